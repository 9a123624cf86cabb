//! Every request Assent sends to an address a user gave it (event deliveries, webhook nodes,
//! Slack webhooks): the address guard's request-time half.
//!
//! Each request checks its URL again with the write-time rules, resolves a named host and
//! refuses the request if any answer is refused, and connects only to the addresses its own
//! resolver checked: the HTTP client resolves names through [`GuardedResolver`], so a DNS
//! answer that changes between the check and the connection is checked again before it is
//! used. Redirects are never followed, proxies from the environment are ignored, and the
//! answer is read up to a bound.

use assent_core::address::{check_ip, check_url, AddressPolicy, Refusal};
use bytes::{Bytes, BytesMut};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::HeaderMap;
use reqwest::Method;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Answers of one name lookup.
pub type Lookup<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;

/// Turns a host name into addresses. The system's resolver in production; tests give names
/// the answers they need.
pub trait Resolver: Send + Sync + 'static {
    fn lookup<'a>(&'a self, host: &'a str) -> Lookup<'a>;
}

/// The operating system's resolver (`getaddrinfo`).
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup<'a>(&'a self, host: &'a str) -> Lookup<'a> {
        Box::pin(async move {
            let answers = tokio::net::lookup_host((host, 0)).await?;
            Ok(answers.map(|a| a.ip()).collect())
        })
    }
}

/// Fixed answers per name; any other name does not resolve.
#[derive(Default)]
pub struct StaticResolver {
    answers: std::sync::RwLock<HashMap<String, Vec<IpAddr>>>,
}

impl StaticResolver {
    /// Makes `host` resolve to `addresses` from now on.
    pub fn set(&self, host: &str, addresses: Vec<IpAddr>) {
        let mut answers = self.answers.write().unwrap_or_else(|e| e.into_inner());
        answers.insert(host.to_ascii_lowercase(), addresses);
    }
}

impl Resolver for StaticResolver {
    fn lookup<'a>(&'a self, host: &'a str) -> Lookup<'a> {
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        let answers = self.answers.read().unwrap_or_else(|e| e.into_inner()).get(&name).cloned();
        Box::pin(async move {
            answers.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "name not known"))
        })
    }
}

/// Why a request was not answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The address guard refused the URL or one of its DNS answers. Not worth retrying.
    Refused(Refusal),
    /// The name did not resolve, or resolved to nothing.
    Unresolved,
    /// No answer within the request's time limit.
    Timeout,
    /// The connection failed or broke (TLS included); the detail is for the log only.
    Connection(String),
}

impl Failure {
    /// Whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Failure::Refused(_))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused(refusal) => write!(f, "address refused: the URL {refusal}"),
            Failure::Unresolved => f.write_str("the host name did not resolve"),
            Failure::Timeout => f.write_str("no answer within the time limit"),
            Failure::Connection(_) => f.write_str("the connection failed"),
        }
    }
}

/// A request to send.
pub struct Request<'a> {
    pub method: Method,
    pub url: &'a str,
    pub headers: Vec<(String, String)>,
    pub body: Option<Bytes>,
    /// For the whole exchange, the answer's body included.
    pub timeout: Duration,
    /// Bytes of the answer's body read at most; the rest is not read.
    pub max_answer_bytes: usize,
}

/// An answer, whatever its status.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The body went on past `max_answer_bytes`.
    pub truncated: bool,
    pub latency: Duration,
}

/// How the outbound client is set up: the operator's exemptions, extra trusted CAs, and
/// the resolver.
pub struct OutboundOptions {
    pub policy: Arc<AddressPolicy>,
    /// PEM certificates trusted besides the built-in roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    pub resolver: Arc<dyn Resolver>,
}

/// The one client for user-given addresses. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    guard: Arc<GuardedResolver>,
}

impl Outbound {
    pub fn new(options: OutboundOptions) -> Result<Outbound, String> {
        let guard =
            Arc::new(GuardedResolver { policy: options.policy, resolver: options.resolver });
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(guard.clone())
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("assent/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &options.extra_ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("the CA file holds no usable certificate: {e}"))?;
            if certificates.is_empty() {
                return Err("the CA file holds no certificate".into());
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder.build().map_err(|e| format!("the HTTP client: {e}"))?;
        Ok(Outbound { client, guard })
    }

    pub fn policy(&self) -> &Arc<AddressPolicy> {
        &self.guard.policy
    }

    /// Checks `url` as a request would: the write-time rules, then every DNS answer of a
    /// named host. A name that does not resolve is `Unresolved`.
    pub async fn check(&self, url: &str) -> Result<(), Failure> {
        let parsed = check_url(url, &self.guard.policy).map_err(Failure::Refused)?;
        if let Some(url::Host::Domain(name)) = parsed.host() {
            self.guard.resolve_checked(name).await?;
        }
        Ok(())
    }

    /// The write-time DNS check: refuses a URL only when its named host resolves, within
    /// `wait`, to an address the rules refuse. A name that does not resolve in time passes,
    /// as every request checks again.
    pub async fn check_name_at_write(&self, url: &str, wait: Duration) -> Result<(), Refusal> {
        let Ok(parsed) = url::Url::parse(url) else { return Ok(()) };
        let Some(url::Host::Domain(name)) = parsed.host() else { return Ok(()) };
        match tokio::time::timeout(wait, self.guard.resolve_checked(name)).await {
            Ok(Err(Failure::Refused(refusal))) => Err(refusal),
            _ => Ok(()),
        }
    }

    /// Sends one request under the address rules.
    pub async fn send(&self, request: Request<'_>) -> Result<Answer, Failure> {
        let started = Instant::now();
        let exchange = async {
            self.check(request.url).await?;
            let mut builder = self.client.request(request.method, request.url);
            for (name, value) in &request.headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            if let Some(body) = request.body {
                builder = builder.body(body);
            }
            let mut response = builder.send().await.map_err(|e| failure_of(&e))?;
            let status = response.status().as_u16();
            let headers = std::mem::take(response.headers_mut());
            let (body, truncated) = read_bounded(&mut response, request.max_answer_bytes).await?;
            Ok(Answer { status, headers, body, truncated, latency: started.elapsed() })
        };
        match tokio::time::timeout(request.timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(Failure::Timeout),
        }
    }
}

async fn read_bounded(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<(Bytes, bool), Failure> {
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failure_of(&e))? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body.freeze(), true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body.freeze(), false))
}

/// What a client error amounts to. A refusal raised inside the resolver travels up the
/// error's sources.
fn failure_of(err: &reqwest::Error) -> Failure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Failure::Refused(refused.0.clone());
        }
        if e.downcast_ref::<NoAnswer>().is_some() {
            return Failure::Unresolved;
        }
        source = e.source();
    }
    if err.is_timeout() {
        return Failure::Timeout;
    }
    Failure::Connection(error_chain(err))
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// A DNS answer the address rules refuse, raised inside the HTTP client's resolver.
#[derive(Debug)]
struct Refused(Refusal);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "address refused: {}", self.0)
    }
}

impl std::error::Error for Refused {}

#[derive(Debug)]
struct NoAnswer;

impl fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the host name did not resolve")
    }
}

impl std::error::Error for NoAnswer {}

/// The HTTP client's resolver: answers only with addresses it has checked, and refuses the
/// name when any answer is refused.
pub struct GuardedResolver {
    policy: Arc<AddressPolicy>,
    resolver: Arc<dyn Resolver>,
}

impl GuardedResolver {
    async fn resolve_checked(&self, host: &str) -> Result<Vec<IpAddr>, Failure> {
        resolve_checked(&self.policy, self.resolver.as_ref(), host).await
    }
}

async fn resolve_checked(
    policy: &AddressPolicy,
    resolver: &dyn Resolver,
    host: &str,
) -> Result<Vec<IpAddr>, Failure> {
    let answers = resolver.lookup(host).await.map_err(|_| Failure::Unresolved)?;
    if answers.is_empty() {
        return Err(Failure::Unresolved);
    }
    if !policy.allows_host(host) {
        for &address in &answers {
            check_ip(address, policy).map_err(Failure::Refused)?;
        }
    }
    Ok(answers)
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let resolver = self.resolver.clone();
        Box::pin(async move {
            let checked = resolve_checked(&policy, resolver.as_ref(), name.as_str())
                .await
                .map_err(|failure| -> Box<dyn std::error::Error + Send + Sync> {
                    match failure {
                        Failure::Refused(refusal) => Box::new(Refused(refusal)),
                        _ => Box::new(NoAnswer),
                    }
                })?;
            let addrs: Addrs = Box::new(checked.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}
