//! The `when` expression language: a JSON AST parsed and checked at write time, and
//! evaluated by a tree walker that never fails at run time.

use serde_json::Value;

/// A parsed, checked expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Literal(Value),
    Var(String),
    Op { op: Op, args: Vec<Expr> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    And,
    Or,
    Not,
    In,
    Includes,
    StartsWith,
    EndsWith,
    Length,
    IsEmpty,
    Regex,
}

/// Parses the string of a custom edge's `when`. The error is a sentence for the API.
pub fn parse_when(_source: &str) -> Result<Expr, String> {
    todo!("expression parser")
}

impl Expr {
    /// The AST as JSON, as `compiled.forwardEdges[].when` shows it.
    pub fn to_json(&self) -> Value {
        todo!("expression to json")
    }

    /// Evaluates against a context object with roots `output`, `step` and `execution`.
    pub fn eval(&self, _ctx: &Value) -> Value {
        todo!("expression evaluator")
    }
}
