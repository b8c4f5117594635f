//! Linearizability checking of recorded histories.
//!
//! The checker is the Wing–Gong search with Lowe's memoization (the algorithm of Knossos and
//! Porcupine). Every operation touches one key and keys are independent registers, so a history
//! is linearizable iff each key's sub-history is (locality); keys are checked one at a time, in
//! increasing order.
//!
//! For one key, each operation becomes a call event and a return event, sorted by time into an
//! index-based doubly linked list. The search walks the list from its head. A call event whose
//! operation the register model accepts in the current state is *linearized*: its state before
//! is pushed on a stack, its two events are unlinked, and the walk restarts at the head. Reaching
//! a return event means that operation cannot come after anything still in the list, so the
//! search backtracks: it pops the last linearized operation, relinks its events and tries the
//! next call after it. The search succeeds once every operation with a known outcome is
//! linearized and fails when it must backtrack with an empty stack. A cache of (set of linearized
//! operations, register state) pairs already reached prunes the search: two paths reaching the
//! same pair have the same futures. Values no operation left can tell apart are merged into one
//! abstract value, and unknown-outcome operations are only linearized where that can matter
//! (see `check_key`), so that operations that never returned do not multiply the configurations.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};

use crate::limits::LINEARIZABILITY_STEPS_MAX;
use crate::sim::history::{OpInput, OpOutput, Operation};

/// The verdict on one history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's sub-history has a linearization.
    Linearizable,
    /// This key's sub-history has none; `operations` is the number of operations on it.
    NotLinearizable {
        /// The first key (in increasing order) whose sub-history has no linearization.
        key: u32,
        /// The number of operations on that key in the history.
        operations: usize,
    },
    /// The search on this key ran out of its step budget; counts as a failure, never a pass.
    BudgetExhausted {
        /// The key whose search gave up.
        key: u32,
        /// The search steps taken on that key before giving up.
        steps: u64,
    },
}

/// Checks a whole history with the default budget (LINEARIZABILITY_STEPS_MAX search steps per key).
///
/// See [`check_with_budget`] for how times and unknown outcomes are read.
pub fn check(history: &[Operation]) -> Verdict {
    check_with_budget(history, LINEARIZABILITY_STEPS_MAX)
}

/// Checks with an explicit per-key step budget.
///
/// Keys are checked in increasing order and the first failing key is reported; the result is
/// deterministic. The input need not be sorted. How the history is read:
///
/// - Operation A must precede operation B iff A returned strictly before B was invoked. At equal
///   times (A returns at `t`, B is invoked at `t`) the two are concurrent: call events sort
///   before return events of the same time, so touching intervals overlap.
/// - An operation with an unknown outcome (`returned: None`) returns at +infinity and any answer
///   is accepted for it: a put may take effect at any point after its invocation, a
///   compare-and-swap too (writing only if its comparison succeeds in the state at that point,
///   else leaving the state unchanged), and either may be placed after everything else, which
///   is the same as never happening. Unknown-outcome gets constrain nothing and are ignored.
/// - A malformed operation that returned before it was invoked is treated as returning at its
///   invocation time.
/// - An answer of the wrong kind for its request (say a put answered with a value) can never be
///   linearized, so its key is reported as not linearizable.
///
/// A step is one visit of an event by the search; a key whose search needs more than
/// `steps_max` steps is reported as [`Verdict::BudgetExhausted`].
pub fn check_with_budget(history: &[Operation], steps_max: u64) -> Verdict {
    let mut by_key: BTreeMap<u32, Vec<&Operation>> = BTreeMap::new();
    for operation in history {
        by_key.entry(operation.key).or_default().push(operation);
    }
    for (key, operations) in by_key {
        match check_key(&operations, steps_max) {
            KeyVerdict::Linearizable => {}
            KeyVerdict::NotLinearizable => {
                return Verdict::NotLinearizable {
                    key,
                    operations: operations.len(),
                }
            }
            KeyVerdict::BudgetExhausted(steps) => return Verdict::BudgetExhausted { key, steps },
        }
    }
    Verdict::Linearizable
}

/// The value of one register (`None`: the key is absent).
type State = Option<u64>;

/// The verdict on one key's sub-history.
enum KeyVerdict {
    Linearizable,
    NotLinearizable,
    BudgetExhausted(u64),
}

/// One operation of a key's sub-history, as the search sees it.
#[derive(Clone, Copy)]
struct Op {
    /// The request, its values abstracted (see [`Abstraction`]).
    input: OpInput,
    /// The answer, its values abstracted; `None`: the outcome is unknown and any answer is
    /// accepted.
    output: Option<OpOutput>,
    /// For an unknown-outcome operation: the previous (by invocation) unknown-outcome operation
    /// with the same abstracted request, which must be linearized before this one is.
    previous_twin: Option<usize>,
}

impl Op {
    /// What the operation asks of the (abstracted) register value.
    fn need(&self) -> Need {
        match (self.input, self.output) {
            (OpInput::Get, Some(OpOutput::Value(Some(seen)))) => Need::Equal(seen),
            (OpInput::Cas { expected, .. }, None | Some(OpOutput::Swapped(true))) => {
                Need::Equal(expected)
            }
            (OpInput::Cas { expected, .. }, Some(OpOutput::Swapped(false))) => {
                Need::Differ(expected)
            }
            _ => Need::Nothing,
        }
    }
}

/// What an operation asks of the (abstracted) register value.
#[derive(Clone, Copy)]
enum Need {
    /// Nothing in particular.
    Nothing,
    /// To hold this value (a get that saw it, a compare-and-swap that succeeded with it, or one
    /// with unknown outcome that may).
    Equal(u64),
    /// Not to hold this value (a compare-and-swap whose comparison with it failed).
    Differ(u64),
}

/// The needs of the operations not linearized yet, counted per (abstracted) value. A function of
/// the set of linearized operations, so it may steer the search without upsetting the cache.
struct Demand {
    equal: Vec<u32>,
    differ: Vec<u32>,
}

impl Demand {
    fn add(&mut self, need: Need) {
        let (counts, value) = match need {
            Need::Nothing => return,
            Need::Equal(value) => (&mut self.equal, value),
            Need::Differ(value) => (&mut self.differ, value),
        };
        if let Some(count) = usize::try_from(value).ok().and_then(|v| counts.get_mut(v)) {
            *count += 1;
        }
    }

    fn remove(&mut self, need: Need) {
        let (counts, value) = match need {
            Need::Nothing => return,
            Need::Equal(value) => (&mut self.equal, value),
            Need::Differ(value) => (&mut self.differ, value),
        };
        if let Some(count) = usize::try_from(value).ok().and_then(|v| counts.get_mut(v)) {
            *count = count.saturating_sub(1);
        }
    }

    fn count(counts: &[u32], state: State) -> u32 {
        state
            .and_then(|value| usize::try_from(value).ok())
            .and_then(|value| counts.get(value).copied())
            .unwrap_or(0)
    }

    /// Whether some operation left needs the register to hold `state`.
    fn wanted(&self, state: State) -> bool {
        Self::count(&self.equal, state) > 0
    }

    /// Whether some operation left needs the register not to hold `state`.
    fn refused(&self, state: State) -> bool {
        Self::count(&self.differ, state) > 0
    }

    /// `state`, or the shared `other` value when no operation left can tell it from that.
    fn canonical(&self, state: State, other: u64) -> State {
        match state {
            Some(_) if !self.wanted(state) && !self.refused(state) => Some(other),
            _ => state,
        }
    }
}

/// Whether `output` is an answer of the right kind for `input`.
fn output_fits(input: OpInput, output: OpOutput) -> bool {
    matches!(
        (input, output),
        (OpInput::Put(_), OpOutput::Written)
            | (OpInput::Get, OpOutput::Value(_))
            | (OpInput::Cas { .. }, OpOutput::Swapped(_))
    )
}

/// The register model: the state after `op` applied to `state`, or `None` if `op`'s answer is
/// impossible in `state`.
fn step(state: State, op: Op) -> Option<State> {
    match (op.input, op.output) {
        (OpInput::Put(value), None | Some(OpOutput::Written)) => Some(Some(value)),
        (OpInput::Get, None) => Some(state),
        (OpInput::Get, Some(OpOutput::Value(seen))) => (state == seen).then_some(state),
        (OpInput::Cas { expected, new }, None) => Some(if state == Some(expected) {
            Some(new)
        } else {
            state
        }),
        (OpInput::Cas { expected, new }, Some(OpOutput::Swapped(true))) => {
            (state == Some(expected)).then_some(Some(new))
        }
        (OpInput::Cas { expected, .. }, Some(OpOutput::Swapped(false))) => {
            (state != Some(expected)).then_some(state)
        }
        _ => None,
    }
}

/// A small growable bitset. Equality and hashing ignore trailing zero words, so two sets with
/// the same members are equal whatever their capacity.
#[derive(Clone, Debug, Default)]
struct Bitset {
    words: Vec<u64>,
}

impl Bitset {
    /// An empty set with room for `bits` members without growing.
    fn with_capacity(bits: usize) -> Self {
        Bitset {
            words: vec![0; bits.div_ceil(64)],
        }
    }

    fn insert(&mut self, bit: usize) {
        let word = bit / 64;
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        self.words[word] |= 1 << (bit % 64);
    }

    fn contains(&self, bit: usize) -> bool {
        self.words
            .get(bit / 64)
            .is_some_and(|word| word & (1 << (bit % 64)) != 0)
    }

    fn remove(&mut self, bit: usize) {
        if let Some(word) = self.words.get_mut(bit / 64) {
            *word &= !(1 << (bit % 64));
        }
    }

    /// The words up to the last non-zero one.
    fn trimmed(&self) -> &[u64] {
        let end = self
            .words
            .iter()
            .rposition(|&word| word != 0)
            .map_or(0, |last| last + 1);
        &self.words[..end]
    }
}

impl PartialEq for Bitset {
    fn eq(&self, other: &Self) -> bool {
        self.trimmed() == other.trimmed()
    }
}

impl Eq for Bitset {}

impl Hash for Bitset {
    fn hash<H: Hasher>(&self, hasher: &mut H) {
        let words = self.trimmed();
        hasher.write_usize(words.len());
        for &word in words {
            hasher.write_u64(word);
        }
    }
}

/// A fast non-cryptographic hasher (FxHash-style) for the cache; its keys are not adversarial.
#[derive(Default)]
struct WordHasher {
    hash: u64,
}

impl WordHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buffer = [0u8; 8];
            buffer[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(buffer));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // Fold the well-mixed high bits into the low ones, which pick the bucket.
        self.hash ^ (self.hash >> 29)
    }
}

/// A configuration the search has already reached.
#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheEntry {
    linearized: Bitset,
    state: State,
}

/// Sentinel before the first event of the main list (operations with a known outcome).
const HEAD: usize = 0;
/// Sentinel after the last event of the main list.
const TAIL: usize = 1;
/// Sentinel before the first call of the pending list (operations with an unknown outcome,
/// whose return events at +infinity are left out).
const PENDING_HEAD: usize = 2;
/// Sentinel after the last call of the pending list.
const PENDING_TAIL: usize = 3;

/// List node of operation `op`'s call event; its return event is the next node index.
fn call_node(op: usize) -> usize {
    4 + 2 * op
}

/// Whether list node `node` is a call event.
fn is_call(node: usize) -> bool {
    node >= 4 && node % 2 == 0
}

/// The operation whose call event is list node `node`.
fn op_of(node: usize) -> usize {
    (node - 4) / 2
}

/// The events of one key, as index-based doubly linked lists sorted by time.
struct Events {
    prev: Vec<usize>,
    next: Vec<usize>,
    /// Position of each event in time order (sentinels after everything).
    rank: Vec<usize>,
}

impl Events {
    /// Unlinks operation `op`'s events (only its call if `pending`).
    fn lift(&mut self, op: usize, pending: bool) {
        let call = call_node(op);
        self.unlink(call);
        if !pending {
            self.unlink(call + 1);
        }
    }

    /// Relinks the events `lift` unlinked (undoing the most recent lift first).
    fn unlift(&mut self, op: usize, pending: bool) {
        let call = call_node(op);
        if !pending {
            self.relink(call + 1);
        }
        self.relink(call);
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        self.prev[next] = node;
    }
}

/// Maps the values of one key's sub-history onto a smaller alphabet that the register model
/// cannot tell apart from the real one.
///
/// Only values some operation compares the register with matter: those completed gets saw and
/// those compare-and-swaps expect. Each gets its own number (`0..`), in increasing order; every
/// other value maps to one shared number (the next one, [`Abstraction::other`]), since no
/// operation can tell such values apart. The model behaves the same on abstracted values, and
/// unknown-outcome writes of unobserved values become interchangeable (see [`check_key`]).
struct Abstraction {
    relevant: BTreeMap<u64, u64>,
}

impl Abstraction {
    fn new(ops: &[Op]) -> Self {
        let mut relevant: BTreeMap<u64, u64> = BTreeMap::new();
        for op in ops {
            if let OpInput::Cas { expected, .. } = op.input {
                relevant.insert(expected, 0);
            }
            if let Some(OpOutput::Value(Some(seen))) = op.output {
                relevant.insert(seen, 0);
            }
        }
        for (number, slot) in (0u64..).zip(relevant.values_mut()) {
            *slot = number;
        }
        Abstraction { relevant }
    }

    /// The number every value nobody compares with maps to.
    fn other(&self) -> u64 {
        self.relevant.len() as u64
    }

    fn value(&self, value: u64) -> u64 {
        self.relevant
            .get(&value)
            .copied()
            .unwrap_or_else(|| self.other())
    }

    fn op(&self, op: Op) -> Op {
        let input = match op.input {
            OpInput::Put(value) => OpInput::Put(self.value(value)),
            OpInput::Get => OpInput::Get,
            OpInput::Cas { expected, new } => OpInput::Cas {
                expected: self.value(expected),
                new: self.value(new),
            },
        };
        let output = match op.output {
            Some(OpOutput::Value(seen)) => Some(OpOutput::Value(seen.map(|v| self.value(v)))),
            other => other,
        };
        Op {
            input,
            output,
            previous_twin: op.previous_twin,
        }
    }
}

/// A hashable, ordered stand-in for an (abstracted) request.
fn input_class(input: OpInput) -> (u8, u64, u64) {
    match input {
        OpInput::Put(value) => (0, value, 0),
        OpInput::Get => (1, 0, 0),
        OpInput::Cas { expected, new } => (2, expected, new),
    }
}

/// Whether an operation with a known outcome that could be linearized next (its call comes
/// before the first return event) is a compare-and-swap whose comparison with `state` failed.
fn refusal_ready(list: &Events, ops: &[Op], state: State) -> bool {
    let Some(value) = state else {
        return false;
    };
    let mut node = list.next[HEAD];
    while is_call(node) {
        let op = &ops[op_of(node)];
        if op.output.is_some() && matches!(op.need(), Need::Differ(refused) if refused == value) {
            return true;
        }
        node = list.next[node];
    }
    false
}

/// Searches for a linearization of one key's operations.
///
/// Besides the cache, three reductions keep unknown-outcome operations (which stay concurrent
/// with everything after their invocation) from multiplying the configurations; none loses a
/// linearization, since each only skips placements that could be replaced by putting the
/// operation at the very end (never happening):
///
/// - The state is kept canonical: a value no operation left can tell apart from the shared
///   abstract value becomes that value, so equivalent configurations meet in the cache.
/// - An unknown-outcome operation is linearized only where it changes the canonical state, and
///   only if some operation left needs the new value, or some operation that could be
///   linearized right after it needs the register not to hold the current one: a write nobody
///   needs is useful only to make a failed compare-and-swap fail, and can then be moved to just
///   before that compare-and-swap.
/// - Unknown-outcome operations with the same abstracted request are interchangeable, so they
///   are linearized in invocation order only.
///
/// Memory: the cache gains at most one entry (a bitset of one bit per operation and a state)
/// per step, so it is bounded indirectly by the step budget, as is the stack (at most one entry
/// per operation).
fn check_key(operations: &[&Operation], steps_max: u64) -> KeyVerdict {
    // Sort key of an event: (time, return rather than call, operation). Calls sort before
    // returns of the same time, so touching intervals count as concurrent. Unknown-outcome
    // operations return at +infinity: their return events are left out.
    let mut ops: Vec<Op> = Vec::with_capacity(operations.len());
    let mut events: Vec<((u64, bool, usize), usize)> = Vec::with_capacity(2 * operations.len());
    for operation in operations {
        let output = operation.returned.map(|(_, output)| output);
        match output {
            None if operation.input == OpInput::Get => continue,
            Some(output) if !output_fits(operation.input, output) => {
                return KeyVerdict::NotLinearizable;
            }
            _ => {}
        }
        let index = ops.len();
        ops.push(Op {
            input: operation.input,
            output,
            previous_twin: None,
        });
        events.push(((operation.invoked, false, index), call_node(index)));
        if let Some((returned, _)) = operation.returned {
            let returned = returned.max(operation.invoked);
            events.push(((returned, true, index), call_node(index) + 1));
        }
    }
    events.sort_unstable();

    let abstraction = Abstraction::new(&ops);
    let other = abstraction.other();
    for op in &mut ops {
        *op = abstraction.op(*op);
    }
    // Chain unknown-outcome twins in invocation order (the order of their call events).
    let mut last_twin: BTreeMap<(u8, u64, u64), usize> = BTreeMap::new();
    for &((_, is_return, index), _) in &events {
        if is_return || ops[index].output.is_some() {
            continue;
        }
        ops[index].previous_twin = last_twin.insert(input_class(ops[index].input), index);
    }
    let values = abstraction.relevant.len();
    let mut demand = Demand {
        equal: vec![0; values],
        differ: vec![0; values],
    };
    for op in &ops {
        demand.add(op.need());
    }

    let nodes = 4 + 2 * ops.len();
    let mut list = Events {
        prev: vec![HEAD; nodes],
        next: vec![TAIL; nodes],
        rank: vec![usize::MAX; nodes],
    };
    let (mut last, mut last_pending) = (HEAD, PENDING_HEAD);
    for (rank, &((_, _, index), node)) in events.iter().enumerate() {
        list.rank[node] = rank;
        let tail = if ops[index].output.is_some() {
            &mut last
        } else {
            &mut last_pending
        };
        list.next[*tail] = node;
        list.prev[node] = *tail;
        *tail = node;
    }
    list.next[last] = TAIL;
    list.prev[TAIL] = last;
    list.next[last_pending] = PENDING_TAIL;
    list.prev[PENDING_TAIL] = last_pending;

    // The candidates for the next linearized operation are the calls before the first return
    // event: first those of the main list, then those of the pending list ranked before that
    // return event (`bound`). Operations with an unknown outcome can always go last, so the
    // search is done once every operation with a known outcome is linearized.
    let mut remaining = ops.iter().filter(|op| op.output.is_some()).count();
    let mut state: State = None;
    let mut linearized = Bitset::with_capacity(ops.len());
    let mut cache: HashSet<CacheEntry, BuildHasherDefault<WordHasher>> = HashSet::default();
    // (operation, state before it, `bound` when it was linearized)
    let mut stack: Vec<(usize, State, usize)> = Vec::with_capacity(ops.len());
    let mut steps: u64 = 0;
    let mut node = list.next[HEAD];
    let mut bound = usize::MAX;
    loop {
        if remaining == 0 {
            return KeyVerdict::Linearizable;
        }
        if steps >= steps_max {
            return KeyVerdict::BudgetExhausted(steps);
        }
        steps += 1;
        let exhausted = if !is_call(node) {
            if node == PENDING_TAIL {
                true
            } else {
                // The first return event (or, defensively, the tail) of the main list.
                bound = list.rank[node];
                node = list.next[PENDING_HEAD];
                false
            }
        } else if ops[op_of(node)].output.is_none() && list.rank[node] > bound {
            true
        } else {
            let index = op_of(node);
            let op = ops[index];
            let twin_done = op
                .previous_twin
                .map_or(true, |twin| linearized.contains(twin));
            if let Some(raw) = step(state, op).filter(|_| twin_done) {
                demand.remove(op.need());
                let after = demand.canonical(raw, other);
                let admissible = op.output.is_some()
                    || (after != demand.canonical(state, other)
                        && (demand.wanted(after) || refusal_ready(&list, &ops, state)));
                if admissible {
                    linearized.insert(index);
                    // Move the bitset into the probe and back, so only new entries are cloned.
                    let probe = CacheEntry {
                        linearized: std::mem::take(&mut linearized),
                        state: after,
                    };
                    let fresh = !cache.contains(&probe);
                    if fresh {
                        cache.insert(probe.clone());
                    }
                    linearized = probe.linearized;
                    if fresh {
                        stack.push((index, state, bound));
                        state = after;
                        list.lift(index, op.output.is_none());
                        if op.output.is_some() {
                            remaining -= 1;
                        }
                        node = list.next[HEAD];
                        continue;
                    }
                    linearized.remove(index);
                }
                demand.add(op.need());
            }
            node = list.next[node];
            false
        };
        if exhausted {
            // No candidate left in this configuration: backtrack.
            let Some((index, before, previous_bound)) = stack.pop() else {
                return KeyVerdict::NotLinearizable;
            };
            let pending = ops[index].output.is_none();
            state = before;
            bound = previous_bound;
            linearized.remove(index);
            demand.add(ops[index].need());
            list.unlift(index, pending);
            if !pending {
                remaining += 1;
            }
            node = list.next[call_node(index)];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(
        client: u32,
        key: u32,
        input: OpInput,
        invoked: u64,
        returned: u64,
        output: OpOutput,
    ) -> Operation {
        Operation {
            client,
            key,
            input,
            invoked,
            returned: Some((returned, output)),
        }
    }

    fn put(client: u32, key: u32, value: u64, invoked: u64, returned: u64) -> Operation {
        done(
            client,
            key,
            OpInput::Put(value),
            invoked,
            returned,
            OpOutput::Written,
        )
    }

    fn get(client: u32, key: u32, seen: Option<u64>, invoked: u64, returned: u64) -> Operation {
        done(
            client,
            key,
            OpInput::Get,
            invoked,
            returned,
            OpOutput::Value(seen),
        )
    }

    fn cas(
        client: u32,
        key: u32,
        (expected, new): (u64, u64),
        swapped: bool,
        invoked: u64,
        returned: u64,
    ) -> Operation {
        done(
            client,
            key,
            OpInput::Cas { expected, new },
            invoked,
            returned,
            OpOutput::Swapped(swapped),
        )
    }

    fn pending(client: u32, key: u32, input: OpInput, invoked: u64) -> Operation {
        Operation {
            client,
            key,
            input,
            invoked,
            returned: None,
        }
    }

    fn rejected(key: u32, operations: usize) -> Verdict {
        Verdict::NotLinearizable { key, operations }
    }

    #[test]
    fn empty_history_is_linearizable() {
        assert_eq!(check(&[]), Verdict::Linearizable);
    }

    #[test]
    fn sequential_put_get_is_linearizable() {
        let history = [
            get(1, 0, None, 0, 1),
            put(1, 0, 5, 2, 3),
            get(2, 0, Some(5), 4, 5),
            put(2, 0, 6, 6, 7),
            get(1, 0, Some(6), 8, 9),
            cas(1, 0, (6, 7), true, 10, 11),
            cas(2, 0, (6, 8), false, 12, 13),
            get(2, 0, Some(7), 14, 15),
        ];
        assert_eq!(check(&history), Verdict::Linearizable);
    }

    #[test]
    fn unsorted_input_is_read_by_time() {
        let history = [
            get(2, 0, Some(6), 8, 9),
            put(2, 0, 6, 6, 7),
            put(1, 0, 5, 2, 3),
        ];
        assert_eq!(check(&history), Verdict::Linearizable);
    }

    #[test]
    fn read_of_never_written_value_is_rejected() {
        let history = [put(1, 0, 5, 0, 1), get(2, 0, Some(9), 2, 3)];
        assert_eq!(check(&history), rejected(0, 2));
    }

    #[test]
    fn stale_read_after_completed_write_is_rejected() {
        let history = [
            put(1, 0, 1, 0, 1),
            put(1, 0, 2, 2, 3),
            get(2, 0, Some(1), 4, 5),
        ];
        assert_eq!(check(&history), rejected(0, 3));
    }

    #[test]
    fn read_of_absent_key_after_completed_write_is_rejected() {
        let history = [put(1, 0, 1, 0, 1), get(2, 0, None, 2, 3)];
        assert_eq!(check(&history), rejected(0, 2));
    }

    #[test]
    fn concurrent_write_and_read_may_see_either_value() {
        for seen in [Some(1), Some(2)] {
            let history = [
                put(1, 0, 1, 0, 1),
                put(1, 0, 2, 2, 6),
                get(2, 0, seen, 3, 5),
            ];
            assert_eq!(check(&history), Verdict::Linearizable, "seen {seen:?}");
        }
        let history = [
            put(1, 0, 1, 0, 1),
            put(1, 0, 2, 2, 6),
            get(2, 0, Some(3), 3, 5),
        ];
        assert_eq!(check(&history), rejected(0, 3));
    }

    #[test]
    fn touching_intervals_are_concurrent() {
        // The put returns at 5 and the get is invoked at 5: they overlap, so the get may
        // precede the put.
        let history = [put(1, 0, 1, 0, 5), get(2, 0, None, 5, 6)];
        assert_eq!(check(&history), Verdict::Linearizable);
        let history = [put(1, 0, 1, 0, 4), get(2, 0, None, 5, 6)];
        assert_eq!(check(&history), rejected(0, 2));
    }

    #[test]
    fn lost_update_via_cas_is_rejected() {
        let history = [
            put(1, 0, 1, 0, 1),
            cas(1, 0, (1, 2), true, 2, 3),
            cas(2, 0, (1, 3), true, 4, 5),
        ];
        assert_eq!(check(&history), rejected(0, 3));
    }

    #[test]
    fn concurrent_cases_from_same_expected_one_succeeds() {
        let history = [
            put(1, 0, 1, 0, 1),
            cas(1, 0, (1, 2), true, 2, 5),
            cas(2, 0, (1, 3), false, 3, 4),
            get(1, 0, Some(2), 6, 7),
        ];
        assert_eq!(check(&history), Verdict::Linearizable);
    }

    #[test]
    fn cas_on_absent_key_never_succeeds() {
        let history = [cas(1, 0, (0, 1), true, 0, 1)];
        assert_eq!(check(&history), rejected(0, 1));
        let history = [cas(1, 0, (0, 1), false, 0, 1), get(1, 0, None, 2, 3)];
        assert_eq!(check(&history), Verdict::Linearizable);
    }

    #[test]
    fn pending_put_later_observed_is_accepted() {
        let history = [
            put(1, 0, 1, 0, 1),
            pending(1, 0, OpInput::Put(2), 2),
            get(2, 0, Some(1), 10, 11),
            get(2, 0, Some(2), 20, 21),
            get(3, 0, Some(2), 30, 31),
        ];
        assert_eq!(check(&history), Verdict::Linearizable);
    }

    #[test]
    fn pending_put_never_observed_is_accepted() {
        let history = [
            put(1, 0, 1, 0, 1),
            pending(1, 0, OpInput::Put(2), 2),
            get(2, 0, Some(1), 10, 11),
            get(2, 0, Some(1), 20, 21),
        ];
        assert_eq!(check(&history), Verdict::Linearizable);
    }

    #[test]
    fn pending_put_cannot_take_effect_before_invocation() {
        let history = [get(2, 0, Some(2), 0, 1), pending(1, 0, OpInput::Put(2), 2)];
        assert_eq!(check(&history), rejected(0, 2));
    }

    #[test]
    fn pending_put_observed_cannot_be_unobserved() {
        let history = [
            put(1, 0, 1, 0, 1),
            pending(1, 0, OpInput::Put(2), 2),
            get(2, 0, Some(2), 10, 11),
            get(2, 0, Some(1), 20, 21),
        ];
        assert_eq!(check(&history), rejected(0, 4));
    }

    #[test]
    fn pending_cas_applies_only_if_comparison_succeeds() {
        // The comparison succeeds after the put of 1, so the pending cas may write 3.
        let history = [
            pending(
                1,
                0,
                OpInput::Cas {
                    expected: 1,
                    new: 3,
                },
                0,
            ),
            put(2, 0, 1, 1, 2),
            get(2, 0, Some(3), 3, 4),
        ];
        assert_eq!(check(&history), Verdict::Linearizable);
        // The register only ever held 2 while the cas could act, so it never writes 3.
        let history = [
            put(2, 0, 2, 0, 1),
            pending(
                1,
                0,
                OpInput::Cas {
                    expected: 1,
                    new: 3,
                },
                2,
            ),
            get(2, 0, Some(3), 3, 4),
        ];
        assert_eq!(check(&history), rejected(0, 3));
    }

    #[test]
    fn pending_get_is_unconstrained() {
        let history = [put(1, 0, 1, 0, 1), pending(2, 0, OpInput::Get, 0)];
        assert_eq!(check(&history), Verdict::Linearizable);
    }

    #[test]
    fn read_going_back_to_older_value_is_rejected() {
        let history = [
            put(1, 0, 1, 0, 1),
            put(1, 0, 2, 2, 10),
            get(2, 0, Some(2), 3, 4),
            get(2, 0, Some(1), 5, 6),
        ];
        assert_eq!(check(&history), rejected(0, 4));
    }

    #[test]
    fn wrong_kind_of_answer_is_rejected() {
        let history = [done(1, 0, OpInput::Put(1), 0, 1, OpOutput::Value(None))];
        assert_eq!(check(&history), rejected(0, 1));
    }

    #[test]
    fn return_before_invocation_is_clamped_to_invocation() {
        // The put "returns" at 1 but was invoked at 5: read as returning at 5, so it
        // precedes the get invoked at 6.
        let history = [put(1, 0, 1, 5, 1), get(2, 0, None, 6, 7)];
        assert_eq!(check(&history), rejected(0, 2));
        let history = [put(1, 0, 1, 5, 1), get(2, 0, Some(1), 6, 7)];
        assert_eq!(check(&history), Verdict::Linearizable);
    }

    #[test]
    fn violation_is_reported_on_its_own_key() {
        let history = [
            put(1, 1, 1, 0, 1),
            get(2, 1, Some(1), 2, 3),
            put(1, 7, 1, 0, 1),
            put(1, 7, 2, 2, 3),
            get(2, 7, Some(1), 4, 5),
            put(1, 9, 1, 0, 1),
            get(2, 9, Some(5), 2, 3),
        ];
        assert_eq!(check(&history), rejected(7, 3));
    }

    #[test]
    fn budget_exhaustion_is_reported() {
        let history = [
            put(1, 3, 1, 0, 10),
            put(2, 3, 2, 0, 10),
            get(3, 3, Some(1), 11, 12),
        ];
        assert_eq!(check(&history), Verdict::Linearizable);
        assert_eq!(
            check_with_budget(&history, 1),
            Verdict::BudgetExhausted { key: 3, steps: 1 }
        );
    }

    /// splitmix64, a tiny deterministic PRNG.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A history from a real register: each operation takes effect at a random point of its
    /// interval (an unknown-outcome one, at a random later point or never), and the answers are
    /// computed by applying the operations in that order. Values written are 1..; none is 0.
    fn register_history(seed: u64, operations: usize, clients: u64, keys: u32) -> Vec<Operation> {
        let mut rng = Rng(seed);
        let mut free_at = vec![0u64; clients as usize];
        let mut next_value = 1u64;
        let mut recent: Vec<u64> = Vec::new();
        // (effect time, index) for operations that take effect.
        let mut effects: Vec<(u64, usize)> = Vec::new();
        let mut history: Vec<Operation> = Vec::with_capacity(operations);
        let mut unknown: Vec<bool> = Vec::with_capacity(operations);
        for index in 0..operations {
            let client = rng.below(clients) as usize;
            let invoked = free_at[client] + rng.below(5);
            let returned = invoked + 1 + rng.below(20);
            free_at[client] = returned + 1;
            let key = rng.below(u64::from(keys)) as u32;
            let input = match rng.below(10) {
                0..=3 => OpInput::Get,
                4..=6 => {
                    next_value += 1;
                    OpInput::Put(next_value)
                }
                _ => {
                    next_value += 1;
                    let expected = if recent.is_empty() || rng.below(4) == 0 {
                        rng.below(next_value)
                    } else {
                        recent[rng.below(recent.len() as u64) as usize]
                    };
                    OpInput::Cas {
                        expected,
                        new: next_value,
                    }
                }
            };
            if let OpInput::Put(value) = input {
                recent.push(value);
            }
            let is_unknown = rng.below(20) == 0;
            if is_unknown {
                if rng.below(2) == 0 {
                    effects.push((invoked + rng.below(60), index));
                }
            } else {
                effects.push((invoked + rng.below(returned - invoked + 1), index));
            }
            unknown.push(is_unknown);
            history.push(Operation {
                client: client as u32,
                key,
                input,
                invoked,
                returned: Some((returned, OpOutput::Written)),
            });
        }
        effects.sort_unstable();
        let mut registers: BTreeMap<u32, u64> = BTreeMap::new();
        for &(_, index) in &effects {
            let operation = &mut history[index];
            let current = registers.get(&operation.key).copied();
            let output = match operation.input {
                OpInput::Put(value) => {
                    registers.insert(operation.key, value);
                    OpOutput::Written
                }
                OpInput::Get => OpOutput::Value(current),
                OpInput::Cas { expected, new } => {
                    let swapped = current == Some(expected);
                    if swapped {
                        registers.insert(operation.key, new);
                    }
                    OpOutput::Swapped(swapped)
                }
            };
            if let Some((time, _)) = operation.returned {
                operation.returned = Some((time, output));
            }
        }
        for (operation, is_unknown) in history.iter_mut().zip(unknown) {
            if is_unknown {
                operation.returned = None;
            }
        }
        history
    }

    #[test]
    fn random_register_histories_are_linearizable_and_corrupted_reads_are_not() {
        let mut corrupted_checked = 0;
        for seed in 0..200 {
            let keys = 1 + (seed % 3) as u32;
            let mut history = register_history(seed, 200, 5, keys);
            assert_eq!(check(&history), Verdict::Linearizable, "seed {seed}");

            let reads: Vec<usize> = (0..history.len())
                .filter(|&i| {
                    matches!(
                        history[i].returned,
                        Some((_, OpOutput::Value(_))) if history[i].input == OpInput::Get
                    )
                })
                .collect();
            if reads.is_empty() {
                continue;
            }
            let mut rng = Rng(seed ^ 0xdead_beef);
            let victim = reads[rng.below(reads.len() as u64) as usize];
            let key = history[victim].key;
            if let Some((time, _)) = history[victim].returned {
                history[victim].returned = Some((time, OpOutput::Value(Some(u64::MAX))));
            }
            let operations = history.iter().filter(|op| op.key == key).count();
            let verdict = check(&history);
            // Keys before the victim's are intact, so the victim's key is the one reported.
            assert_eq!(
                verdict,
                Verdict::NotLinearizable { key, operations },
                "seed {seed}"
            );
            corrupted_checked += 1;
        }
        assert!(corrupted_checked > 100);
    }
}
