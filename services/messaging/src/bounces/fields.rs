//! The header-like fields of `message/delivery-status` and
//! `message/feedback-report` bodies: `Name: value` lines, folded lines
//! continued by leading white space, groups separated by blank lines.

/// One blank-line-separated group of fields, names lowercased, in order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Group(Vec<(String, String)>);

impl Group {
    /// The first value of field `name` (lowercase), trimmed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    fn push_line(&mut self, line: &str) {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = self.0.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            return;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            self.0.push((name, value.trim().to_owned()));
        }
    }
}

/// The groups of `text`, empty groups left out.
pub fn groups(text: &str) -> Vec<Group> {
    let mut groups = vec![Group::default()];
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            groups.push(Group::default());
        } else if let Some(group) = groups.last_mut() {
            group.push_line(line);
        }
    }
    groups.retain(|group| !group.0.is_empty());
    groups
}

/// A typed value such as `rfc822; jean@example.org` or `smtp; 550 …`
/// without its type.
pub fn untyped(value: &str) -> &str {
    match value.split_once(';') {
        Some((kind, rest)) if !kind.trim().contains(' ') => rest.trim(),
        _ => value.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_lines_continue_the_field_above() {
        let text = "Reporting-MTA: dns; mx.example.net\r\n\r\n\
                    Final-Recipient: rfc822; jean@example.org\r\n\
                    Diagnostic-Code: smtp; 550 5.1.1 <jean@example.org>:\r\n\
                    \x20   Recipient address rejected\r\n";
        let groups = groups(text);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].get("reporting-mta"), Some("dns; mx.example.net"));
        assert_eq!(
            groups[1].get("diagnostic-code"),
            Some("smtp; 550 5.1.1 <jean@example.org>: Recipient address rejected")
        );
    }

    #[test]
    fn a_typed_value_loses_its_type_but_not_its_semicolons() {
        assert_eq!(untyped("rfc822; jean@example.org"), "jean@example.org");
        assert_eq!(untyped("smtp; 550 no; really"), "550 no; really");
        assert_eq!(
            untyped("user unknown; see 5.1.1"),
            "user unknown; see 5.1.1"
        );
    }
}
