//! Encoding and delimiter sniffing, and the streaming decoder that feeds the CSV parser UTF-8.

use std::io::{self, ErrorKind, Read};

use chardetng::{EncodingDetector, Iso2022JpDetection, Utf8Detection};
use encoding_rs::{CoderResult, Decoder, Encoding, UTF_8};

/// How many leading bytes of a file are looked at to guess its encoding and delimiter.
pub(crate) const SAMPLE_LEN: usize = 64 * 1024;

/// Size of the decoded-text buffer handed to the CSV parser.
const OUT_LEN: usize = 64 * 1024;

/// What the first bytes of a file tell about it.
pub(crate) struct Sniffed {
    pub(crate) encoding: &'static Encoding,
    pub(crate) delimiter: u8,
    /// The kind of spreadsheet workbook the file is instead of a CSV file.
    pub(crate) workbook: Option<&'static str>,
}

/// The workbook `sample` begins, by its format's signature: a zip archive
/// (.xlsx, .ods) or an OLE2 compound file (.xls).
fn workbook(sample: &[u8]) -> Option<&'static str> {
    const OLE2: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    const OPENDOCUMENT: &[u8] = b"mimetypeapplication/vnd.oasis.opendocument.spreadsheet";
    if sample.starts_with(&OLE2) {
        return Some("an Excel 97-2003 workbook (.xls)");
    }
    if !sample.starts_with(b"PK\x03\x04") {
        return None;
    }
    let opendocument = sample
        .windows(OPENDOCUMENT.len())
        .any(|w| w == OPENDOCUMENT);
    Some(match opendocument {
        true => "an OpenDocument spreadsheet (.ods)",
        false => "an Excel workbook (.xlsx)",
    })
}

/// Reads a file as UTF-8 text whatever its encoding, in constant memory.
///
/// Line endings (CRLF, and the lone CR of old Mac files) become LF, inside quoted fields
/// too, so that the CSV parser counts lines right. Undecodable bytes become U+FFFD.
pub(crate) struct Decoding<R> {
    source: R,
    decoder: Decoder,
    raw: Box<[u8]>,
    raw_pos: usize,
    raw_len: usize,
    source_done: bool,
    out: Box<[u8]>,
    out_pos: usize,
    out_len: usize,
    carry_cr: bool,
    finished: bool,
    bytes_read: u64,
}

impl<R: Read> Decoding<R> {
    /// Reads the first bytes of `source`, guesses its encoding and delimiter, and returns a
    /// reader of the whole file, sample included, as UTF-8.
    pub(crate) fn sniff(mut source: R) -> io::Result<(Self, Sniffed)> {
        let mut raw = vec![0; SAMPLE_LEN].into_boxed_slice();
        let (raw_len, source_done) = fill(&mut source, &mut raw)?;
        let sample = &raw[..raw_len];

        let (encoding, bom_len) = match Encoding::for_bom(sample) {
            Some(found) => found,
            None => (guess_encoding(sample, source_done), 0),
        };
        let text = encoding.decode_without_bom_handling(&sample[bom_len..]).0;
        let delimiter = guess_delimiter(&text);
        let workbook = workbook(sample);

        let reader = Self {
            source,
            decoder: encoding.new_decoder_without_bom_handling(),
            raw,
            raw_pos: bom_len,
            raw_len,
            source_done,
            out: vec![0; OUT_LEN].into_boxed_slice(),
            out_pos: 0,
            out_len: 0,
            carry_cr: false,
            finished: false,
            bytes_read: raw_len as u64,
        };
        Ok((
            reader,
            Sniffed {
                encoding,
                delimiter,
                workbook,
            },
        ))
    }

    /// Raw bytes taken from the source so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Decodes the next stretch of input into `out`, with line endings normalised.
    fn refill(&mut self) -> io::Result<()> {
        let mut written = 0;
        if self.carry_cr {
            self.out[0] = b'\r';
            written = 1;
            self.carry_cr = false;
        }
        let held = written;

        while written == held && !self.finished {
            if self.raw_pos == self.raw_len && !self.source_done {
                let (len, done) = fill(&mut self.source, &mut self.raw)?;
                self.raw_pos = 0;
                self.raw_len = len;
                self.source_done = done;
                self.bytes_read += len as u64;
            }
            let input = &self.raw[self.raw_pos..self.raw_len];
            let (result, read, produced, _) =
                self.decoder
                    .decode_to_utf8(input, &mut self.out[written..], self.source_done);
            self.raw_pos += read;
            written += produced;
            if self.source_done && result == CoderResult::InputEmpty {
                self.finished = true;
            }
        }

        self.out_pos = 0;
        self.out_len = self.normalise_line_ends(written);
        Ok(())
    }

    /// Turns CRLF and lone CR in `out[..len]` into LF; holds back a CR that ends the buffer
    /// until the next byte is known. Returns the length to hand out.
    fn normalise_line_ends(&mut self, len: usize) -> usize {
        let (mut read, mut write) = (0, 0);
        while let Some(offset) = self.out[read..len].iter().position(|&b| b == b'\r') {
            let at = read + offset;
            if read != write {
                self.out.copy_within(read..at, write);
            }
            write += at - read;
            if at + 1 == len && !self.finished {
                self.carry_cr = true;
                return write;
            }
            self.out[write] = b'\n';
            write += 1;
            read = at + 1;
            if read < len && self.out[read] == b'\n' {
                read += 1;
            }
        }
        if read != write {
            self.out.copy_within(read..len, write);
        }
        write + (len - read)
    }
}

impl<R: Read> Read for Decoding<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out_pos == self.out_len {
            if self.finished && !self.carry_cr {
                return Ok(0);
            }
            self.refill()?;
        }
        let len = buf.len().min(self.out_len - self.out_pos);
        buf[..len].copy_from_slice(&self.out[self.out_pos..self.out_pos + len]);
        self.out_pos += len;
        Ok(len)
    }
}

/// Reads from `source` until `buf` is full or the source ends; tells whether it ended.
fn fill<R: Read>(source: &mut R, buf: &mut [u8]) -> io::Result<(usize, bool)> {
    let mut len = 0;
    while len < buf.len() {
        match source.read(&mut buf[len..]) {
            Ok(0) => return Ok((len, true)),
            Ok(n) => len += n,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok((len, false))
}

/// The encoding of a file without a byte order mark, from its first bytes.
///
/// UTF-8 wins when the sample decodes as UTF-8, or when its valid non-ASCII characters
/// outnumber its invalid sequences (a UTF-8 file with a few stray Latin-1 bytes, which are
/// then reported row by row rather than turning every accent into mojibake). Otherwise
/// chardetng picks among the legacy encodings.
fn guess_encoding(sample: &[u8], complete: bool) -> &'static Encoding {
    let sample = if complete {
        sample
    } else {
        without_cut_sequence(sample)
    };
    let mut valid = 0_usize;
    let mut invalid = 0_usize;
    for chunk in sample.utf8_chunks() {
        valid += chunk.valid().chars().filter(|c| !c.is_ascii()).count();
        invalid += usize::from(!chunk.invalid().is_empty());
    }
    if invalid == 0 || valid > invalid {
        return UTF_8;
    }

    let mut detector = EncodingDetector::new(Iso2022JpDetection::Deny);
    detector.feed(sample, complete);
    detector.guess(None, Utf8Detection::Deny)
}

/// `sample` without a UTF-8 sequence cut short by the end of the sample.
fn without_cut_sequence(sample: &[u8]) -> &[u8] {
    let tail_start = sample.len().saturating_sub(3);
    for at in (tail_start..sample.len()).rev() {
        let byte = sample[at];
        if byte & 0xC0 == 0x80 {
            continue;
        }
        let needed = match byte {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if sample.len() - at < needed {
            &sample[..at]
        } else {
            sample
        };
    }
    sample
}

/// The delimiter of the header line: whichever of `;`, `,` and TAB occurs most outside
/// quotes (`,` when none does). Lines above it that hold none of them (titles such as
/// `Adhérents au 1er décembre`, up to the five the reader skips) are passed over.
fn guess_delimiter(text: &str) -> u8 {
    let text = text.trim_start_matches(['\r', '\n', '\u{FEFF}']);
    let mut counts = [0_usize; 3];
    let mut quoted = false;
    let mut titles = 0;
    for byte in text.bytes() {
        match byte {
            b'"' => quoted = !quoted,
            b'\r' | b'\n' if !quoted => {
                if counts != [0; 3] || titles == super::MAX_TITLE_LINES {
                    break;
                }
                titles += usize::from(byte == b'\n');
            }
            b';' if !quoted => counts[0] += 1,
            b',' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let candidates = [b';', b',', b'\t'];
    let mut best = 1;
    for index in [0, 2] {
        if counts[index] > counts[best] {
            best = index;
        }
    }
    candidates[best]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that hands out at most `step` bytes per read, to exercise buffer edges.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let len = self.step.min(buf.len()).min(self.data.len());
            buf[..len].copy_from_slice(&self.data[..len]);
            self.data = &self.data[len..];
            Ok(len)
        }
    }

    fn decode_all(data: &[u8]) -> (String, &'static str) {
        let (mut reader, sniffed) = Decoding::sniff(data).unwrap();
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        (text, sniffed.encoding.name())
    }

    #[test]
    fn crlf_and_lone_carriage_returns_become_line_feeds() {
        let (text, _) = decode_all(b"a;b\rc;d\r\ne;f\r\r\n\ng\r");

        assert_eq!(text, "a;b\nc;d\ne;f\n\n\ng\n");
    }

    #[test]
    fn a_crlf_split_across_reads_stays_one_line_end() {
        let mut data = vec![b'x'; SAMPLE_LEN - 1];
        data.extend_from_slice(b"\r\ny\rz");
        let (mut reader, _) = Decoding::sniff(Trickle {
            data: &data,
            step: 7,
        })
        .unwrap();
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();

        assert!(text.ends_with("x\ny\nz"), "{:?}", &text[text.len() - 10..]);
        assert_eq!(reader.bytes_read(), data.len() as u64);
    }

    #[test]
    fn windows_1252_text_is_detected_and_decoded() {
        let (text, encoding) = decode_all(b"Pr\xe9nom;Nom\r\nH\xe9l\xe8ne;Dupr\xe9\r\n");

        assert_eq!(encoding, "windows-1252");
        assert_eq!(text, "Prénom;Nom\nHélène;Dupré\n");
    }

    #[test]
    fn utf8_with_a_stray_latin1_byte_stays_utf8_with_a_replacement_character() {
        let (text, encoding) = decode_all(b"Pr\xc3\xa9nom;Nom\nH\xc3\xa9l\xc3\xa8ne;Dupr\xe9\n");

        assert_eq!(encoding, "UTF-8");
        assert_eq!(text, "Prénom;Nom\nHélène;Dupr\u{FFFD}\n");
    }

    #[test]
    fn a_utf8_sequence_cut_by_the_sample_end_does_not_change_the_guess() {
        let mut data = vec![b'x'; SAMPLE_LEN - 1];
        data.extend_from_slice("é;".as_bytes());

        let (_, sniffed) = Decoding::sniff(data.as_slice()).unwrap();

        assert_eq!(sniffed.encoding.name(), "UTF-8");
    }

    #[test]
    fn byte_order_marks_select_utf8_and_utf16_and_are_dropped() {
        let (text, encoding) = decode_all(b"\xef\xbb\xbfa,b\n");
        assert_eq!((text.as_str(), encoding), ("a,b\n", "UTF-8"));

        let utf16: Vec<u8> = [0xFEFF_u16]
            .into_iter()
            .chain("é\tb\n".encode_utf16())
            .flat_map(u16::to_le_bytes)
            .collect();
        let (text, encoding) = decode_all(&utf16);
        assert_eq!((text.as_str(), encoding), ("é\tb\n", "UTF-16LE"));
    }

    #[test]
    fn the_delimiter_is_the_most_frequent_one_outside_quotes_on_the_header_line() {
        assert_eq!(guess_delimiter("a;b;c\n1,2,3,4,5\n"), b';');
        assert_eq!(guess_delimiter("\"a;b\",c\n"), b',');
        assert_eq!(guess_delimiter("a\tb\tc,d\n"), b'\t');
        assert_eq!(guess_delimiter("\r\n\"x\ny;z\";w\n"), b';');
        assert_eq!(guess_delimiter("email\n"), b',');
    }

    #[test]
    fn title_lines_without_a_delimiter_are_passed_over() {
        assert_eq!(
            guess_delimiter("Titre\nPrénom;Nom;E-mail\nA;B;a@b.fr\n"),
            b';'
        );
        assert_eq!(
            guess_delimiter("Adhérents\r\n\r\nGénéré le 03/12/2026\r\nNom\tE-mail\r\n"),
            b'\t'
        );
        // A title with a delimiter of its own is the header as far as this can tell.
        assert_eq!(guess_delimiter("Titre;;\nPrénom;Nom\n"), b';');
        // Six lines without one: a one-column file.
        assert_eq!(guess_delimiter("a\nb\nc\nd\ne\nf\ng;h\n"), b',');
    }
}
