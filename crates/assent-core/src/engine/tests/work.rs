//! Agent, webhook and notification steps: work items, timers, retries.
