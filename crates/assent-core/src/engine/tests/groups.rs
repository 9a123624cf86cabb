//! Group policies, required members, collective branches.
