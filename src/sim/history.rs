//! Recorded client histories: what each simulated client asked, when, and what it was told.
//!
//! The model is one register per key. Values are `u64`; an absent key reads as `None`.
//! Times are virtual (the simulator's clock), so a history replays exactly from its seed.

/// What a client asked the cluster to do to one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpInput {
    /// Write `value`.
    Put(u64),
    /// Read the current value.
    Get,
    /// Write `new` if the current value is `expected` (an absent key never matches).
    Cas {
        /// The value the key must hold for the write to happen.
        expected: u64,
        /// The value written when it does.
        new: u64,
    },
}

/// What the cluster answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpOutput {
    /// A put was applied.
    Written,
    /// A get observed this value (`None`: the key was absent).
    Value(Option<u64>),
    /// A compare-and-swap was applied (`true`) or its comparison failed (`false`).
    Swapped(bool),
}

/// One operation in a history.
///
/// `returned` is `None` when the outcome is unknown (the client timed out or its node crashed):
/// such an operation may have taken effect at any time after `invoked`, or never.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The client that issued the operation (operations of one client never overlap).
    pub client: u32,
    /// The key (register) the operation touches.
    pub key: u32,
    /// What was asked.
    pub input: OpInput,
    /// Virtual time at which the request was issued.
    pub invoked: u64,
    /// Virtual time and answer, when the client got one.
    pub returned: Option<(u64, OpOutput)>,
}
