//! One SMTP connection: plain or TLS underneath, replies read with bounds, and the switch to
//! TLS after STARTTLS.

use super::SmtpError;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{client::TlsStream, rustls, TlsConnector};

/// Longest reply line read (RFC 5321 allows 512 bytes; servers are given room).
const REPLY_LINE_MAX_BYTES: u64 = 2048;
/// Most lines in one reply (an EHLO answer lists one extension a line).
const REPLY_LINES_MAX: usize = 64;

/// The transport under a connection.
pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A server's reply: its code and the text of each line.
#[derive(Debug)]
pub(super) struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// The reply as the log shows it.
    pub fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" / "))
    }
}

pub(super) struct Connection {
    io: BufReader<Stream>,
}

impl Connection {
    pub fn new(stream: Stream) -> Connection {
        Connection { io: BufReader::new(stream) }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.io.get_ref(), Stream::Tls(_))
    }

    /// Sends one command line. The line may hold credentials: it is never logged.
    pub async fn send(&mut self, line: &str) -> Result<(), SmtpError> {
        let stream = self.io.get_mut();
        stream.write_all(line.as_bytes()).await.map_err(broken)?;
        stream.write_all(b"\r\n").await.map_err(broken)?;
        stream.flush().await.map_err(broken)
    }

    pub async fn command(&mut self, line: &str) -> Result<Reply, SmtpError> {
        self.send(line).await?;
        self.reply().await
    }

    /// Writes raw bytes (the DATA block).
    pub async fn write_all(&mut self, bytes: &[u8]) -> Result<(), SmtpError> {
        let stream = self.io.get_mut();
        stream.write_all(bytes).await.map_err(broken)?;
        stream.flush().await.map_err(broken)
    }

    /// Reads one reply, single or multi-line.
    pub async fn reply(&mut self) -> Result<Reply, SmtpError> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await?;
            let (code, last, text) = parse_line(&line).ok_or_else(|| {
                SmtpError::transient("the SMTP server's reply is unreadable", &line)
            })?;
            lines.push(text.to_owned());
            if last {
                return Ok(Reply { code, lines });
            }
            if lines.len() >= REPLY_LINES_MAX {
                let why = "the SMTP server's reply is too long";
                return Err(SmtpError::transient(why, "too many reply lines"));
            }
        }
    }

    async fn line(&mut self) -> Result<String, SmtpError> {
        let mut bytes = Vec::new();
        let mut bounded = (&mut self.io).take(REPLY_LINE_MAX_BYTES);
        bounded.read_until(b'\n', &mut bytes).await.map_err(broken)?;
        if bytes.is_empty() {
            let why = "the SMTP server closed the connection";
            return Err(SmtpError::transient(why, "end of stream"));
        }
        if !bytes.ends_with(b"\n") {
            let why = "the SMTP server's reply is too long";
            return Err(SmtpError::transient(why, "reply line over the bound"));
        }
        let text = String::from_utf8_lossy(&bytes);
        Ok(text.trim_end_matches(['\r', '\n']).to_owned())
    }

    /// Switches to TLS, after the server said yes to STARTTLS (or at once for `smtps`).
    pub async fn start_tls(
        self,
        connector: &TlsConnector,
        server_name: ServerName<'static>,
    ) -> Result<Connection, SmtpError> {
        // Bytes sent before the handshake would be read as if they came over TLS.
        if !self.io.buffer().is_empty() {
            let why = "the SMTP server sent data before the TLS handshake";
            return Err(SmtpError::permanent(why, "bytes after the STARTTLS reply"));
        }
        let Stream::Plain(tcp) = self.io.into_inner() else {
            return Err(SmtpError::permanent("TLS was started twice", "STARTTLS over TLS"));
        };
        let tls = connector.connect(server_name, tcp).await.map_err(|e| handshake_failed(&e))?;
        Ok(Connection::new(Stream::Tls(Box::new(tls))))
    }
}

/// `250-text` or `250 text` (or a bare `250`): the code, whether it is the last line, and
/// the text.
fn parse_line(line: &str) -> Option<(u16, bool, &str)> {
    let digits = line.get(..3)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !(b'2'..=b'5').contains(&digits.as_bytes()[0])
    {
        return None;
    }
    let code = digits.parse().ok()?;
    match line.as_bytes().get(3) {
        None => Some((code, true, "")),
        Some(b' ') => Some((code, true, &line[4..])),
        Some(b'-') => Some((code, false, &line[4..])),
        Some(_) => None,
    }
}

fn broken(err: io::Error) -> SmtpError {
    SmtpError::transient("the connection to the SMTP server failed", &err.to_string())
}

/// A certificate the roots do not vouch for is the operator's to fix; other handshake
/// failures may pass.
fn handshake_failed(err: &io::Error) -> SmtpError {
    let rustls_error = err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    if let Some(rustls::Error::InvalidCertificate(why)) = rustls_error {
        let message = "the SMTP server's certificate is not trusted";
        return SmtpError::permanent(message, &format!("{why:?}"));
    }
    SmtpError::transient("the TLS handshake with the SMTP server failed", &err.to_string())
}

/// The TLS client: the built-in roots and the operator's extra CAs, on the `ring` provider.
pub(super) fn tls_connector(extra_ca_pem: Option<&[u8]>) -> Result<TlsConnector, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_ca_pem {
        let mut added = 0;
        for certificate in CertificateDer::pem_slice_iter(pem) {
            let certificate = certificate.map_err(|e| format!("the CA file is unreadable: {e}"))?;
            roots.add(certificate).map_err(|e| format!("a CA certificate is unusable: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err("the CA file holds no certificate".into());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::parse_line;

    #[test]
    fn reply_lines() {
        let cases = [
            ("250 OK", Some((250, true, "OK"))),
            ("250-SIZE 1000", Some((250, false, "SIZE 1000"))),
            ("354", Some((354, true, ""))),
            ("550 5.1.1 no such user", Some((550, true, "5.1.1 no such user"))),
            ("25", None),
            ("abc def", None),
            ("650 nope", None),
            ("250x", None),
        ];
        for (line, expected) in cases {
            assert_eq!(parse_line(line), expected, "{line}");
        }
    }
}
