//! A directed graph over a definition's node ids, for the reachability questions the
//! compiler and the linter ask (ancestors, loop bodies, cycles, roots).

use crate::model::Node;
use std::collections::HashMap;

/// Nodes are indexed in definition order; a repeated node id is the first node of that id.
/// Edges naming an undeclared node are ignored: the linter reports them as dangling.
pub(crate) struct NodeGraph<'a> {
    ids: Vec<&'a str>,
    index: HashMap<&'a str, usize>,
    successors: Vec<Vec<usize>>,
    predecessors: Vec<Vec<usize>>,
}

impl<'a> NodeGraph<'a> {
    /// A graph with the given nodes and no edges.
    pub(crate) fn new(nodes: &'a [Node]) -> NodeGraph<'a> {
        let mut ids = Vec::with_capacity(nodes.len());
        let mut index = HashMap::with_capacity(nodes.len());
        for node in nodes {
            if !index.contains_key(node.node_id.as_str()) {
                index.insert(node.node_id.as_str(), ids.len());
                ids.push(node.node_id.as_str());
            }
        }
        let count = ids.len();
        NodeGraph {
            ids,
            index,
            successors: vec![Vec::new(); count],
            predecessors: vec![Vec::new(); count],
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn id(&self, index: usize) -> &'a str {
        self.ids[index]
    }

    pub(crate) fn index_of(&self, node_id: &str) -> Option<usize> {
        self.index.get(node_id).copied()
    }

    pub(crate) fn contains(&self, node_id: &str) -> bool {
        self.index.contains_key(node_id)
    }

    /// Adds `from -> to`; ignored when either end is not a declared node.
    pub(crate) fn add_edge(&mut self, from: &str, to: &str) {
        if let (Some(f), Some(t)) = (self.index_of(from), self.index_of(to)) {
            self.successors[f].push(t);
            self.predecessors[t].push(f);
        }
    }

    pub(crate) fn has_predecessor(&self, index: usize) -> bool {
        !self.predecessors[index].is_empty()
    }

    /// Marks every node reachable from `starts`, the starts included.
    pub(crate) fn descendants(&self, starts: impl IntoIterator<Item = usize>) -> Vec<bool> {
        walk(&self.successors, starts)
    }

    /// Marks every node from which one of `targets` is reachable, the targets included.
    pub(crate) fn ancestors(&self, targets: impl IntoIterator<Item = usize>) -> Vec<bool> {
        walk(&self.predecessors, targets)
    }

    /// True when `ancestor` is a different node from which `node` can be reached.
    pub(crate) fn is_ancestor(&self, ancestor: &str, node: &str) -> bool {
        match (self.index_of(ancestor), self.index_of(node)) {
            (Some(a), Some(n)) if a != n => self.descendants([a])[n],
            _ => false,
        }
    }

    /// True when a path of at least one edge leads from `index` back to itself.
    pub(crate) fn on_cycle(&self, index: usize) -> bool {
        self.descendants(self.successors[index].iter().copied())[index]
    }
}

fn walk(adjacency: &[Vec<usize>], starts: impl IntoIterator<Item = usize>) -> Vec<bool> {
    let mut seen = vec![false; adjacency.len()];
    let mut stack: Vec<usize> = starts.into_iter().collect();
    while let Some(at) = stack.pop() {
        if seen[at] {
            continue;
        }
        seen[at] = true;
        stack.extend(adjacency[at].iter().copied().filter(|&next| !seen[next]));
    }
    seen
}
