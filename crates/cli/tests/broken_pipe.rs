//! `muster … | head`: the reader goes away before the listing is printed,
//! and the CLI must end quietly instead of panicking in `println!`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

/// Answers every request with one page of 200 people, as `GET /v1/people` does.
fn serve_people(listener: TcpListener) {
    let tags: Vec<String> = (0..40).map(|n| format!("\"tag-{n:03}\"")).collect();
    let people: Vec<String> = (0..200)
        .map(|n| {
            format!(
                "{{\"id\":\"00000000-0000-7000-8000-{n:012}\",\"first_name\":\"Camille\",\
                 \"last_name\":\"Martin\",\"email\":\"camille.{n}@example.org\",\"tags\":[{}]}}",
                tags.join(",")
            )
        })
        .collect();
    let body = format!(
        "{{\"people\":[{}],\"next_page_token\":\"\"}}",
        people.join(",")
    );
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { return };
        let mut reader = BufReader::new(stream.try_clone().expect("clone the socket"));
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear();
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body.as_bytes());
    }
}

#[test]
fn a_reader_that_stops_early_ends_the_listing_without_a_panic() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let address = listener.local_addr().expect("the bound address");
    std::thread::spawn(move || serve_people(listener));

    for json in [false, true] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_muster"));
        command
            .args(["--gateway", &format!("http://{address}")])
            .args(["--api-key", "mk_test"])
            .args(json.then_some("--json"))
            .args(["people", "list", "--limit", "200"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start muster");

        // Read one line, as `head -1` would, and close the pipe.
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("read the first line");
        drop(stdout);

        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("read stderr");
        let status = child.wait().expect("wait for muster");

        assert!(!first.is_empty(), "the listing started (json: {json})");
        assert!(
            !stderr.contains("panicked"),
            "muster panicked on a closed pipe (json: {json}): {stderr}"
        );
        assert!(
            status.success() || status.signal() == Some(libc::SIGPIPE),
            "muster ended with {status:?} (json: {json}): {stderr}"
        );
    }
}
