//! Recognising RFC 8058 one-click requests: a POST whose form holds
//! `List-Unsubscribe=One-Click`, encoded as `multipart/form-data` (what the
//! RFC recommends) or `application/x-www-form-urlencoded`.

const FIELD: &str = "List-Unsubscribe";
const VALUE: &str = "One-Click";

/// Whether `body`, of type `content_type`, is a one-click unsubscribe request.
pub fn requested(content_type: Option<&str>, body: &[u8]) -> bool {
    let Ok(body) = std::str::from_utf8(body) else {
        return false;
    };
    match content_type.and_then(multipart_boundary) {
        Some(boundary) => multipart_has_field(body, boundary),
        None => urlencoded_has_field(body),
    }
}

fn urlencoded_has_field(body: &str) -> bool {
    let expected = format!("{FIELD}={VALUE}");
    body.trim_end().split('&').any(|pair| pair == expected)
}

/// The boundary of a `multipart/form-data` content type.
fn multipart_boundary(content_type: &str) -> Option<&str> {
    let mut params = content_type.split(';').map(str::trim);
    let essence = params.next()?;
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params
        .filter_map(|param| param.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value.trim().trim_matches('"'))
        .filter(|boundary| !boundary.is_empty())
}

fn multipart_has_field(body: &str, boundary: &str) -> bool {
    let delimiter = format!("--{boundary}");
    body.split(delimiter.as_str()).any(|part| {
        let Some((headers, content)) = part.split_once("\r\n\r\n") else {
            return false;
        };
        let named = headers.lines().any(|line| {
            let Some((name, value)) = line.split_once(':') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("content-disposition")
                && value
                    .split(';')
                    .map(str::trim)
                    .any(|p| p == format!("name=\"{FIELD}\""))
        });
        named && content.trim_end_matches(['\r', '\n']) == VALUE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    #[test]
    fn a_urlencoded_one_click_body_is_recognised() {
        assert!(requested(FORM, b"List-Unsubscribe=One-Click"));
        assert!(requested(None, b"List-Unsubscribe=One-Click\r\n"));
        assert!(requested(FORM, b"a=b&List-Unsubscribe=One-Click"));
    }

    #[test]
    fn the_confirmation_button_is_not_a_one_click_request() {
        assert!(!requested(FORM, b""));
        assert!(!requested(FORM, b"confirm=yes"));
        assert!(!requested(FORM, b"List-Unsubscribe=One-Clickx"));
    }

    #[test]
    fn a_multipart_one_click_body_is_recognised() {
        let body = "--XyZ\r\n\
            Content-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n\
            One-Click\r\n\
            --XyZ--\r\n";
        assert!(requested(
            Some("multipart/form-data; boundary=XyZ"),
            body.as_bytes()
        ));
        assert!(requested(
            Some("Multipart/Form-Data; boundary=\"XyZ\""),
            body.as_bytes()
        ));
    }

    #[test]
    fn a_multipart_body_with_another_field_is_not_one_click() {
        let body = "--XyZ\r\n\
            Content-Disposition: form-data; name=\"Other\"\r\n\r\n\
            One-Click\r\n\
            --XyZ--\r\n";
        assert!(!requested(
            Some("multipart/form-data; boundary=XyZ"),
            body.as_bytes()
        ));
    }
}
