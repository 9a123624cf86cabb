//! Schema problems as the API reports them: `{code, path, message}`.

use serde::Serialize;
use std::fmt;

/// One step of a path into a request body: an object key or an array index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// A location inside a request body, such as `nodes.0.config.agentId`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Path(Vec<PathSeg>);

impl Path {
    pub fn root() -> Path {
        Path(Vec::new())
    }

    pub fn key(&self, key: &str) -> Path {
        let mut segs = self.0.clone();
        segs.push(PathSeg::Key(key.to_owned()));
        Path(segs)
    }

    pub fn index(&self, index: usize) -> Path {
        let mut segs = self.0.clone();
        segs.push(PathSeg::Index(index));
        Path(segs)
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn segments(&self) -> &[PathSeg] {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            match seg {
                PathSeg::Key(k) => f.write_str(k)?,
                PathSeg::Index(n) => write!(f, "{n}")?,
            }
        }
        Ok(())
    }
}

/// One schema problem. `code` follows the vocabulary of the hosted engine's validator
/// (`invalid_type`, `too_small`, `too_big`, `invalid_string`, `invalid_enum_value`,
/// `unrecognized_keys`, `custom`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Issue {
    pub code: &'static str,
    pub path: Path,
    pub message: String,
    /// True when `message` is one of the reference's exact sentences, which the API
    /// reports as they are, without a ` for <path>` suffix.
    #[serde(skip)]
    pub exact: bool,
}

impl Issue {
    pub fn new(code: &'static str, path: &Path, message: impl Into<String>) -> Issue {
        Issue { code, path: path.clone(), message: message.into(), exact: false }
    }

    /// A rule with a fixed sentence, reported verbatim.
    pub fn exact(path: &Path, message: impl Into<String>) -> Issue {
        Issue { code: "custom", path: path.clone(), message: message.into(), exact: true }
    }

    /// The headline for an error envelope: the message, then ` for <path>` unless the
    /// message is exact or the problem is at the root.
    pub fn headline(&self) -> String {
        if self.exact || self.path.is_root() {
            self.message.clone()
        } else {
            format!("{} for {}", self.message, self.path)
        }
    }
}
