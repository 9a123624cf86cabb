//! The address guard's write-time half: which URLs Assent may ever call. DNS answers are
//! checked by the shell that resolves them, with the same range rules.
