//! Words of the execution API that the request schemas, the engine and the store share:
//! execution and delivery statuses, decisions, resolutions and resolve actions, each with
//! its wire name.

/// An enum whose variants travel as fixed strings.
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant),+
        }

        impl $name {
            /// Every variant with its wire name, in the order the API lists them.
            pub const ALL: &'static [($name, &'static str)] = &[$(($name::$variant, $wire)),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }
        }
    };
}

wire_enum! {
    /// Where an execution stands.
    ExecutionStatus {
        Pending = "pending",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

wire_enum! {
    /// A reviewer's decision.
    Decision { Approve = "approve", Reject = "reject" }
}

wire_enum! {
    /// How an agent finding was resolved.
    Resolution { Resolved = "resolved", Rejected = "rejected" }
}

wire_enum! {
    /// An operator's or reviewer's override of a step.
    ResolveAction {
        ForceApprove = "force-approve",
        ForceReject = "force-reject",
        ForceComplete = "force-complete",
        ForceFail = "force-fail",
        ReviewerApprove = "reviewer-approve",
        ReviewerReject = "reviewer-reject",
    }
}

wire_enum! {
    /// Where an outbound event delivery stands.
    DeliveryStatus { Pending = "pending", Delivered = "delivered", Dead = "dead" }
}

impl DeliveryStatus {
    pub fn from_name(name: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.iter().find(|(_, wire)| *wire == name).map(|(s, _)| *s)
    }
}

impl ExecutionStatus {
    pub fn from_name(name: &str) -> Option<ExecutionStatus> {
        ExecutionStatus::ALL.iter().find(|(_, wire)| *wire == name).map(|(s, _)| *s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

impl Decision {
    /// The decision a reviewer or an override recorded, as step outputs spell it.
    pub fn from_name(name: &str) -> Option<Decision> {
        Decision::ALL.iter().find(|(_, wire)| *wire == name).map(|(d, _)| *d)
    }
}

impl ResolveAction {
    pub fn from_name(name: &str) -> Option<ResolveAction> {
        ResolveAction::ALL.iter().find(|(_, wire)| *wire == name).map(|(a, _)| *a)
    }

    pub fn is_reviewer(self) -> bool {
        matches!(self, ResolveAction::ReviewerApprove | ResolveAction::ReviewerReject)
    }

    /// The decision an approve or reject action synthesizes.
    pub fn decision(self) -> Option<&'static str> {
        match self {
            ResolveAction::ForceApprove | ResolveAction::ReviewerApprove => Some("approve"),
            ResolveAction::ForceReject | ResolveAction::ReviewerReject => Some("reject"),
            _ => None,
        }
    }
}
