//! An email as the DATA command carries it: MIME headers in ASCII (RFC 2047 encoded words
//! where the text is not), a quoted-printable UTF-8 body, CRLF line ends, dot-stuffing.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use std::fmt::Write as _;

/// Longest subject written as it is; a longer or non-ASCII one is encoded.
const PLAIN_SUBJECT_MAX: usize = 900;
/// Bytes of text in one encoded word: 45 bytes are 60 base64 characters, and with
/// `=?UTF-8?B?` and `?=` the word stays within RFC 2047's 75.
const ENCODED_WORD_BYTES: usize = 45;
/// Characters of a quoted-printable line before its soft break (`=`), RFC 2045's 76 in all.
const QP_LINE_MAX: usize = 75;

/// What goes into one message.
pub struct Email<'a> {
    /// The `From` header's value.
    pub from: &'a str,
    /// The recipients the server accepted.
    pub to: &'a [String],
    pub subject: Option<&'a str>,
    pub body: &'a str,
    pub html: bool,
    /// RFC 5322 date, already formatted.
    pub date: Option<&'a str>,
    pub message_id: &'a str,
}

/// The message: headers, a blank line, the body; lines end in CRLF, the last one without it.
pub fn format(email: &Email) -> String {
    let mut out = String::new();
    if let Some(date) = email.date {
        let _ = write!(out, "Date: {date}\r\n");
    }
    let _ = write!(out, "From: {}\r\n", email.from);
    let _ = write!(out, "To: {}\r\n", email.to.join(",\r\n "));
    if let Some(subject) = email.subject.filter(|s| !s.is_empty()) {
        let _ = write!(out, "Subject: {}\r\n", header_text(subject));
    }
    let _ = write!(out, "Message-ID: {}\r\n", email.message_id);
    out.push_str("Auto-Submitted: auto-generated\r\n");
    out.push_str("MIME-Version: 1.0\r\n");
    let subtype = if email.html { "html" } else { "plain" };
    let _ = write!(out, "Content-Type: text/{subtype}; charset=utf-8\r\n");
    out.push_str("Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    out.push_str(&quoted_printable(email.body));
    out
}

/// The DATA block of a message made by [`format`]: a line that starts with `.` gets another
/// one, and the block ends with the lone `.` line.
pub fn data_block(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 8);
    for line in message.split("\r\n") {
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Unstructured header text on one logical line: control characters become spaces; text
/// that is not short printable ASCII becomes encoded words, folded one per line.
pub fn header_text(text: &str) -> String {
    let one_line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let plain = one_line.len() <= PLAIN_SUBJECT_MAX
        && one_line.bytes().all(|b| (b' '..=b'~').contains(&b))
        && !one_line.contains("=?");
    if plain {
        return one_line;
    }
    encoded_words(&one_line).join("\r\n ")
}

/// `=?UTF-8?B?...?=` words, each of whole characters.
fn encoded_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + ENCODED_WORD_BYTES).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        words.push(format!("=?UTF-8?B?{}?=", BASE64.encode(&text[start..end])));
        start = end;
    }
    words
}

/// A display name for an address header: as it is when it is plain words, quoted when it
/// holds specials, encoded when it is not ASCII.
pub fn display_name(name: &str) -> String {
    let name: String = name.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if !name.is_ascii() {
        return encoded_words(&name).join(" ");
    }
    let has_specials = name.chars().any(|c| "()<>[]:;@\\,.\"".contains(c));
    if !has_specials {
        return name;
    }
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The body in quoted-printable: a line break of the text (`\n` or `\r\n`) is a CRLF, every
/// other byte outside printable ASCII (and `=`, and a space or tab that ends a line) is
/// `=XX`, and lines are soft-broken before 76 characters.
pub fn quoted_printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for (index, line) in text.split('\n').enumerate() {
        if index > 0 {
            out.push_str("\r\n");
        }
        encode_line(line.strip_suffix('\r').unwrap_or(line).as_bytes(), &mut out);
    }
    out
}

fn encode_line(line: &[u8], out: &mut String) {
    let mut width = 0;
    for (i, &byte) in line.iter().enumerate() {
        let ends_line = i + 1 == line.len();
        let blank = byte == b' ' || byte == b'\t';
        let literal = (blank && !ends_line) || ((b'!'..=b'~').contains(&byte) && byte != b'=');
        let piece = if literal { 1 } else { 3 };
        if width + piece > QP_LINE_MAX {
            out.push_str("=\r\n");
            width = 0;
        }
        if literal {
            out.push(byte as char);
        } else {
            let _ = write!(out, "={byte:02X}");
        }
        width += piece;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_cases() {
        let cases = [
            ("plain text", "plain text"),
            ("a=b", "a=3Db"),
            ("café", "caf=C3=A9"),
            ("one\ntwo\r\nthree", "one\r\ntwo\r\nthree"),
            ("ends with space \nnext\t", "ends with space=20\r\nnext=09"),
            ("lone\rreturn", "lone=0Dreturn"),
            ("\n\n", "\r\n\r\n"),
            ("", ""),
        ];
        for (text, expected) in cases {
            assert_eq!(quoted_printable(text), expected, "{text:?}");
        }
    }

    #[test]
    fn quoted_printable_lines_are_short_and_escapes_whole() {
        let text = format!("{}{}", "x".repeat(74), "é".repeat(40));
        let encoded = quoted_printable(&text);
        for line in encoded.split("\r\n") {
            assert!(line.len() <= 76, "{line}");
            let body = line.strip_suffix('=').unwrap_or(line);
            let escapes_whole = body.split('=').skip(1).all(|part| part.len() >= 2);
            assert!(escapes_whole, "{line}");
        }
        assert!(encoded.starts_with(&format!("{}=\r\n=C3=A9", "x".repeat(74))));
    }

    #[test]
    fn header_text_cases() {
        let cases = [
            ("Plain subject", "Plain subject".to_owned()),
            ("Two\r\nBcc: evil@example.com", "Two  Bcc: evil@example.com".to_owned()),
            ("Réunion", "=?UTF-8?B?UsOpdW5pb24=?=".to_owned()),
            ("=?UTF-8?B?x?=", "=?UTF-8?B?PT9VVEYtOD9CP3g/PQ==?=".to_owned()),
        ];
        for (text, expected) in cases {
            assert_eq!(header_text(text), expected, "{text:?}");
        }
        let long = "日本語の件名".repeat(10);
        let folded = header_text(&long);
        let words: Vec<&str> = folded.split("\r\n ").collect();
        assert!(words.len() > 1);
        let mut decoded = Vec::new();
        for word in &words {
            assert!(word.len() <= 75, "{word}");
            let inner = word.strip_prefix("=?UTF-8?B?").and_then(|w| w.strip_suffix("?=")).unwrap();
            decoded.extend(BASE64.decode(inner).unwrap());
        }
        assert_eq!(String::from_utf8(decoded).unwrap(), long);
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name("Assent"), "Assent");
        assert_eq!(display_name("Acme, Inc."), "\"Acme, Inc.\"");
        assert_eq!(display_name("Say \"hi\""), "\"Say \\\"hi\\\"\"");
        assert_eq!(display_name("Zoë"), "=?UTF-8?B?Wm/Dqw==?=");
    }

    #[test]
    fn message_and_data_block() {
        let to = ["a@example.com".to_owned(), "b@example.com".to_owned()];
        let email = Email {
            from: "Assent <assent@example.com>",
            to: &to,
            subject: Some("Hi"),
            body: ".leading dot\n..two\nend",
            html: true,
            date: Some("Tue, 1 Dec 2026 00:00:00 +0000"),
            message_id: "<x@example.com>",
        };
        let message = format(&email);
        let expected = "Date: Tue, 1 Dec 2026 00:00:00 +0000\r\n\
                        From: Assent <assent@example.com>\r\n\
                        To: a@example.com,\r\n b@example.com\r\n\
                        Subject: Hi\r\n\
                        Message-ID: <x@example.com>\r\n\
                        Auto-Submitted: auto-generated\r\n\
                        MIME-Version: 1.0\r\n\
                        Content-Type: text/html; charset=utf-8\r\n\
                        Content-Transfer-Encoding: quoted-printable\r\n\
                        \r\n\
                        .leading dot\r\n..two\r\nend";
        assert_eq!(message, expected);
        let block = String::from_utf8(data_block(&message)).unwrap();
        assert!(block.ends_with("\r\n..leading dot\r\n...two\r\nend\r\n.\r\n"), "{block}");
    }
}
