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
//! is pushed on a stack, its events are unlinked, and the walk restarts at the head. Reaching a
//! return event means that operation cannot come after anything still in the list, so the
//! search backtracks: it pops the last linearized operation, relinks its events and tries the
//! next call after it. The search succeeds once every operation with a known outcome is
//! linearized and fails when it must backtrack with an empty stack. A cache of configurations
//! (set of linearized operations as a bitset, register state) already explored without success
//! prunes the search, since two paths reaching the same configuration have the same futures.
//!
//! Operations whose outcome is unknown stay concurrent with everything after their invocation
//! and would multiply the configurations, so the search handles them with care (see
//! `check_key`): values no operation left can tell apart are merged into one abstract value,
//! such operations are linearized only where that can matter, and a configuration is also
//! pruned when one that differs only by linearizing fewer of them already failed.

use std::collections::{BTreeMap, HashMap};
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
    /// What the operation asks of the register value, as far as it matters (see `check_key`).
    need: Need,
}

impl Op {
    /// The (abstracted) value the operation may write (`None` for a get).
    fn write(&self) -> State {
        match self.input {
            OpInput::Put(value) | OpInput::Cas { new: value, .. } => Some(value),
            OpInput::Get => None,
        }
    }

    /// What the operation asks of the (abstracted) register value.
    fn own_need(&self) -> Need {
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

    /// A hashable, ordered stand-in for the request.
    fn class(&self) -> (u8, u64, u64) {
        match self.input {
            OpInput::Put(value) => (0, value, 0),
            OpInput::Get => (1, 0, 0),
            OpInput::Cas { expected, new } => (2, expected, new),
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
/// impossible in `state`. An unknown-outcome operation accepts any answer.
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
            need: Need::Nothing,
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
    equal: Vec<usize>,
    differ: Vec<usize>,
}

impl Demand {
    fn counter(&mut self, need: Need) -> Option<&mut usize> {
        let (counts, value) = match need {
            Need::Nothing => return None,
            Need::Equal(value) => (&mut self.equal, value),
            Need::Differ(value) => (&mut self.differ, value),
        };
        usize::try_from(value).ok().and_then(|v| counts.get_mut(v))
    }

    fn add(&mut self, need: Need) {
        if let Some(count) = self.counter(need) {
            *count += 1;
        }
    }

    fn remove(&mut self, need: Need) {
        if let Some(count) = self.counter(need) {
            *count = count.saturating_sub(1);
        }
    }

    fn count(counts: &[usize], state: State) -> usize {
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

/// The Zobrist hash of one member of a [`Bitset`] (splitmix64 of it).
fn member_hash(bit: usize) -> u64 {
    let mut z = (bit as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small growable bitset.
///
/// Its hash is a Zobrist hash (the xor of a fixed pseudo-random word per member) kept up to date
/// by `insert` and `remove`, so hashing costs O(1). A `compact` copy, as the cache keeps, leaves
/// out the leading all-ones words and the trailing zero words: the search's sets of linearized
/// operations are mostly a run of everything invoked long ago plus a few recent ones. Equality
/// and hashing see only the members, whatever the representation.
#[derive(Clone, Debug, Default)]
struct Bitset {
    /// Words below `base` are all ones and not stored (0 except in compact copies).
    base: usize,
    /// Words from `base` on.
    words: Vec<u64>,
    /// The number of leading all-ones words (at least `base`).
    ones: usize,
    /// One past the last non-zero word (at least `ones`).
    high: usize,
    /// The xor of `member_hash` over the members.
    zobrist: u64,
}

impl Bitset {
    /// Word `index` (all ones below `base`, zero past the stored words).
    fn word(&self, index: usize) -> u64 {
        match index.checked_sub(self.base) {
            None => u64::MAX,
            Some(offset) => self.words.get(offset).copied().unwrap_or(0),
        }
    }

    fn contains(&self, bit: usize) -> bool {
        self.word(bit / 64) & (1 << (bit % 64)) != 0
    }

    fn insert(&mut self, bit: usize) {
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        let Some(offset) = word.checked_sub(self.base) else {
            return; // Already a member.
        };
        if offset >= self.words.len() {
            self.words.resize(offset + 1, 0);
        }
        if self.words[offset] & mask != 0 {
            return;
        }
        self.words[offset] |= mask;
        self.zobrist ^= member_hash(bit);
        self.high = self.high.max(word + 1);
        while self.word(self.ones) == u64::MAX {
            self.ones += 1;
        }
    }

    /// Removes `bit`. Only sets with `base` 0 (not compact copies) can lose members below
    /// their `base`; the search never removes from compact copies.
    fn remove(&mut self, bit: usize) {
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        let Some(stored) = word
            .checked_sub(self.base)
            .and_then(|offset| self.words.get_mut(offset))
        else {
            return;
        };
        if *stored & mask == 0 {
            return;
        }
        *stored &= !mask;
        self.zobrist ^= member_hash(bit);
        self.ones = self.ones.min(word);
        while self.high > self.ones && self.word(self.high - 1) == 0 {
            self.high -= 1;
        }
    }

    /// The words from `ones` to `high`: with `ones`, all that tells two sets apart.
    fn middle(&self) -> &[u64] {
        let start = self.ones.saturating_sub(self.base);
        let end = self.high.saturating_sub(self.base);
        self.words.get(start..end).unwrap_or(&[])
    }

    /// A copy storing only the middle words.
    fn compact(&self) -> Bitset {
        Bitset {
            base: self.ones,
            words: self.middle().to_vec(),
            ones: self.ones,
            high: self.high,
            zobrist: self.zobrist,
        }
    }

    fn is_subset(&self, other: &Self) -> bool {
        self.ones <= other.ones
            && (self.ones..self.high).all(|index| self.word(index) & !other.word(index) == 0)
    }
}

impl PartialEq for Bitset {
    fn eq(&self, other: &Self) -> bool {
        self.zobrist == other.zobrist && self.ones == other.ones && self.middle() == other.middle()
    }
}

impl Eq for Bitset {}

impl Hash for Bitset {
    fn hash<H: Hasher>(&self, hasher: &mut H) {
        hasher.write_u64(self.zobrist);
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

/// The part of a configuration the cache is keyed by.
#[derive(PartialEq, Eq, Hash)]
struct CacheKey {
    /// The linearized operations with a known outcome.
    done: Bitset,
    /// The (canonical) register state.
    state: State,
}

/// The most sets of linearized unknown-outcome operations the cache keeps per key (the oldest
/// go first), so that looking one up stays cheap when many of them are incomparable. Forgetting
/// a failed configuration only costs exploring it again.
const CACHE_SETS_MAX: usize = 32;

/// The configurations explored without finding a linearization.
///
/// Linearizing fewer unknown-outcome operations never hurts (the others can go at the end), so
/// a configuration is covered when one with the same key and a subset of its linearized
/// unknown-outcome operations failed; each key keeps only the minimal such sets. Configurations
/// still being explored (on the stack) are not in the cache: a configuration cannot recur below
/// itself, as each step linearizes one more operation.
#[derive(Default)]
struct Cache {
    failed: HashMap<CacheKey, Vec<Bitset>, BuildHasherDefault<WordHasher>>,
}

impl Cache {
    /// Whether the configuration (`done`, `state`, `pending`) is covered by a failed one.
    fn covers(&self, done: &mut Bitset, state: State, pending: &Bitset) -> bool {
        // Move the bitset into the key and back, so that looking up clones nothing.
        let key = CacheKey {
            done: std::mem::take(done),
            state,
        };
        let covered = self
            .failed
            .get(&key)
            .is_some_and(|sets| sets.iter().any(|set| set.is_subset(pending)));
        *done = key.done;
        covered
    }

    /// Records that the configuration (`done`, `state`, `pending`) failed.
    fn record(&mut self, done: &mut Bitset, state: State, pending: &Bitset) {
        let key = CacheKey {
            done: std::mem::take(done),
            state,
        };
        if let Some(sets) = self.failed.get_mut(&key) {
            sets.retain(|set| !pending.is_subset(set));
            if sets.len() >= CACHE_SETS_MAX {
                sets.remove(0);
            }
            sets.push(pending.compact());
        } else {
            let compact = CacheKey {
                done: key.done.compact(),
                state,
            };
            self.failed.insert(compact, vec![pending.compact()]);
        }
        *done = key.done;
    }
}

/// The lists events are kept in. An operation with an unknown outcome has no return event (it
/// returns at +infinity) and its call goes to one of two pending lists, so that the search does
/// not wade through such calls when they cannot help.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// Calls and returns of operations with a known outcome.
    Main,
    /// Calls of unknown-outcome operations writing a value some operation needs.
    Wanted,
    /// Calls of the other unknown-outcome operations, which can only help a failed
    /// compare-and-swap fail.
    Escape,
}

/// Each lane with its list's head and tail sentinel nodes; operations' nodes follow them.
const LANES: [(Lane, usize, usize); 3] = [
    (Lane::Main, 0, 1),
    (Lane::Wanted, 2, 3),
    (Lane::Escape, 4, 5),
];
/// Head sentinel of the main list.
const HEAD: usize = 0;
/// Head sentinel of the wanted list.
const WANTED_HEAD: usize = 2;
/// Head sentinel of the escape list.
const ESCAPE_HEAD: usize = 4;

/// List node of operation `op`'s call event; its return event is the next node.
fn call_node(op: usize) -> usize {
    6 + 2 * op
}

/// Whether list node `node` is a call event.
fn is_call(node: usize) -> bool {
    node >= 6 && node.is_multiple_of(2)
}

/// The operation whose call or return event is list node `node`.
fn op_of(node: usize) -> usize {
    (node - 6) / 2
}

/// The events of one key, as index-based doubly linked lists sorted by time.
struct Events {
    prev: Vec<usize>,
    next: Vec<usize>,
    /// Position of each event in time order (sentinels after everything).
    rank: Vec<usize>,
    /// The list each node belongs to.
    lane: Vec<Lane>,
}

impl Events {
    /// Unlinks operation `op`'s events.
    fn lift(&mut self, op: usize) {
        let call = call_node(op);
        self.unlink(call);
        if self.lane[call] == Lane::Main {
            self.unlink(call + 1);
        }
    }

    /// Relinks the events `lift` unlinked (undoing the most recent lift first).
    fn unlift(&mut self, op: usize) {
        let call = call_node(op);
        if self.lane[call] == Lane::Main {
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

    /// Whether a known-outcome operation that could be linearized next (its call comes before
    /// the first return event) is a compare-and-swap whose comparison with `state` failed.
    fn refusal_ready(&self, ops: &[Op], state: State) -> bool {
        let Some(value) = state else {
            return false;
        };
        let mut node = self.next[HEAD];
        while is_call(node) {
            if matches!(ops[op_of(node)].need, Need::Differ(refused) if refused == value) {
                return true;
            }
            node = self.next[node];
        }
        false
    }
}

/// Searches for a linearization of one key's operations.
///
/// Besides the cache, these reductions keep unknown-outcome operations (which stay concurrent
/// with everything after their invocation) from multiplying the configurations. None loses a
/// linearization: each only skips placements that can be traded for putting the operation
/// later or at the very end (never happening), which is always allowed for such an operation.
///
/// - The state is kept canonical: a value no operation left can tell apart from the shared
///   abstract value becomes that value, so equivalent configurations meet in the cache.
/// - An unknown-outcome operation is linearized only where it changes the canonical state, and
///   only if some operation left needs the new value, or some operation that could be
///   linearized right after it needs the register not to hold the current one: a write nobody
///   needs is useful only to make a failed compare-and-swap fail, and can then be moved to just
///   before that compare-and-swap. (Those whose value no operation ever needs wait in a list of
///   their own, scanned only then.)
/// - Unknown-outcome operations with the same abstracted request are interchangeable, so they
///   are linearized in invocation order only.
/// - An unknown-outcome compare-and-swap whose write nobody needs is, likewise, only useful to
///   make a failed compare-and-swap fail, so it does not make its expected value needed.
/// - A configuration is pruned when one with fewer unknown-outcome operations linearized and
///   otherwise equal already failed (see [`Cache`]).
///
/// Memory: the cache gains at most one entry (two compact bitsets and a state) per step, so it
/// is bounded indirectly by the step budget (`steps_max`); the stack holds at most one entry
/// per operation.
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
            need: Need::Nothing,
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
    // An unknown-outcome compare-and-swap needs its expected value only if the value it would
    // write is useful: needed by a known-outcome operation, or expected by another such
    // compare-and-swap that is useful in turn. (A write nobody needs only helps a failed
    // compare-and-swap fail, which the search handles apart.)
    let values = abstraction.relevant.len();
    let mut useful = vec![false; values + 1];
    let mut waiting: Vec<Vec<u64>> = vec![Vec::new(); values + 1];
    let mut found: Vec<u64> = Vec::new();
    for op in &ops {
        match (op.output, op.own_need(), op.input) {
            (Some(_), Need::Equal(value), _) => found.push(value),
            (None, _, OpInput::Cas { expected, new }) => {
                if let Some(list) = usize::try_from(new).ok().and_then(|n| waiting.get_mut(n)) {
                    list.push(expected);
                }
            }
            _ => {}
        }
    }
    while let Some(value) = found.pop() {
        let Some(slot) = usize::try_from(value).ok().and_then(|v| useful.get_mut(v)) else {
            continue;
        };
        if !*slot {
            *slot = true;
            if let Some(list) = usize::try_from(value).ok().and_then(|v| waiting.get_mut(v)) {
                found.append(list);
            }
        }
    }
    for op in &mut ops {
        op.need = match (op.output, op.input) {
            (None, OpInput::Cas { new, .. })
                if !usize::try_from(new)
                    .ok()
                    .and_then(|n| useful.get(n).copied())
                    .unwrap_or(false) =>
            {
                Need::Nothing
            }
            _ => op.own_need(),
        };
    }
    let mut demand = Demand {
        equal: vec![0; values],
        differ: vec![0; values],
    };
    for op in &ops {
        demand.add(op.need);
    }

    // Known-outcome and unknown-outcome operations get bit numbers of their own, each in
    // invocation order (which keeps the cache's compact bitsets short), and unknown-outcome
    // twins are chained in invocation order.
    let mut bit = vec![0usize; ops.len()];
    let mut previous_twin: Vec<Option<usize>> = vec![None; ops.len()];
    let mut last_twin: BTreeMap<(u8, u64, u64), usize> = BTreeMap::new();
    let (mut known, mut unknown) = (0usize, 0usize);
    for &((_, is_return, index), _) in &events {
        if is_return {
            continue;
        }
        let counter = if ops[index].output.is_some() {
            &mut known
        } else {
            previous_twin[index] = last_twin.insert(ops[index].class(), index);
            &mut unknown
        };
        bit[index] = *counter;
        *counter += 1;
    }

    let nodes = call_node(ops.len());
    let mut list = Events {
        prev: vec![HEAD; nodes],
        next: vec![HEAD; nodes],
        rank: vec![usize::MAX; nodes],
        lane: vec![Lane::Main; nodes],
    };
    let mut last = [HEAD, WANTED_HEAD, ESCAPE_HEAD];
    for &(lane, head, tail) in &LANES {
        list.lane[head] = lane;
        list.lane[tail] = lane;
    }
    for (rank, &((_, _, index), node)) in events.iter().enumerate() {
        let op = ops[index];
        let lane = match op.output {
            Some(_) => Lane::Main,
            None if demand.wanted(op.write()) => Lane::Wanted,
            None => Lane::Escape,
        };
        let last = &mut last[lane as usize];
        list.rank[node] = rank;
        list.lane[node] = lane;
        list.next[*last] = node;
        list.prev[node] = *last;
        *last = node;
    }
    for (&(_, _, tail), &last) in LANES.iter().zip(&last) {
        list.next[last] = tail;
        list.prev[tail] = last;
    }

    // The candidates for the next linearized operation are the calls before the first return
    // event: those of the main list, then those of the wanted list ranked before that return
    // event (`bound`), then, if a failed compare-and-swap is ready to need it, those of the
    // escape list ranked before it. Unknown-outcome operations can always go last, so the search
    // is done once every known-outcome operation is linearized.
    let mut remaining = known;
    let mut state: State = None;
    let mut done = Bitset::default();
    let mut pending = Bitset::default();
    let mut cache = Cache::default();
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
        let lane = list.lane[node];
        let exhausted = if !is_call(node) || (lane != Lane::Main && list.rank[node] > bound) {
            // The end of a lane's candidates.
            match lane {
                Lane::Main => {
                    // The first return event (or, defensively, the tail) of the main list.
                    bound = list.rank[node];
                    node = list.next[WANTED_HEAD];
                    false
                }
                Lane::Wanted if list.refusal_ready(&ops, state) => {
                    node = list.next[ESCAPE_HEAD];
                    false
                }
                Lane::Wanted | Lane::Escape => true,
            }
        } else {
            let index = op_of(node);
            let op = ops[index];
            let twin_done = previous_twin[index].is_none_or(|twin| pending.contains(bit[twin]));
            if let Some(raw) = step(state, op).filter(|_| twin_done) {
                demand.remove(op.need);
                let after = demand.canonical(raw, other);
                let admissible = lane == Lane::Main
                    || (after != demand.canonical(state, other)
                        && (lane == Lane::Escape // Reached only when a refusal is ready.
                            || demand.wanted(after)
                            || list.refusal_ready(&ops, state)));
                if admissible {
                    let set = if lane == Lane::Main {
                        &mut done
                    } else {
                        &mut pending
                    };
                    set.insert(bit[index]);
                    if !cache.covers(&mut done, after, &pending) {
                        stack.push((index, state, bound));
                        state = after;
                        list.lift(index);
                        if lane == Lane::Main {
                            remaining -= 1;
                        }
                        node = list.next[HEAD];
                        continue;
                    }
                    let set = if lane == Lane::Main {
                        &mut done
                    } else {
                        &mut pending
                    };
                    set.remove(bit[index]);
                }
                demand.add(op.need);
            }
            node = list.next[node];
            false
        };
        if exhausted {
            // No candidate left in this configuration: it failed; backtrack.
            let Some((index, before, previous_bound)) = stack.pop() else {
                return KeyVerdict::NotLinearizable;
            };
            cache.record(&mut done, state, &pending);
            let known_outcome = ops[index].output.is_some();
            let set = if known_outcome {
                &mut done
            } else {
                &mut pending
            };
            set.remove(bit[index]);
            state = before;
            bound = previous_bound;
            demand.add(ops[index].need);
            list.unlift(index);
            if known_outcome {
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
    fn concurrent_cas_pair_from_same_expected_may_have_one_success() {
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
    fn pending_put_can_explain_failed_cas() {
        // Only the unobserved pending put of 2 can make the cas expecting 1 fail.
        let history = [
            put(1, 0, 1, 0, 1),
            pending(1, 0, OpInput::Put(2), 2),
            cas(2, 0, (1, 3), false, 3, 4),
        ];
        assert_eq!(check(&history), Verdict::Linearizable);
        let history = [put(1, 0, 1, 0, 1), cas(2, 0, (1, 3), false, 3, 4)];
        assert_eq!(check(&history), rejected(0, 2));
    }

    #[test]
    fn pending_twins_can_both_take_effect() {
        // Two identical pending puts of 1, each needed to explain one read of 1.
        let history = [
            pending(1, 0, OpInput::Put(1), 0),
            pending(2, 0, OpInput::Put(1), 0),
            get(3, 0, Some(1), 1, 2),
            put(3, 0, 2, 3, 4),
            get(3, 0, Some(2), 5, 6),
            get(3, 0, Some(1), 7, 8),
        ];
        assert_eq!(check(&history), Verdict::Linearizable);
        let history = [
            pending(1, 0, OpInput::Put(1), 0),
            get(3, 0, Some(1), 1, 2),
            put(3, 0, 2, 3, 4),
            get(3, 0, Some(2), 5, 6),
            get(3, 0, Some(1), 7, 8),
        ];
        assert_eq!(check(&history), rejected(0, 5));
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

    #[test]
    fn bitsets_are_equal_and_hash_alike_iff_same_members() {
        fn build(members: &std::collections::BTreeSet<usize>) -> Bitset {
            let mut set = Bitset::default();
            for &bit in members.iter().rev() {
                set.insert(bit);
            }
            set
        }
        let mut rng = Rng(11);
        let mut model = std::collections::BTreeSet::new();
        let mut set = Bitset::default();
        let mut previous = (model.clone(), set.compact());
        let mut full_words = 0;
        for round in 0..20_000 {
            // Mostly low bits, in phases of mostly inserting and mostly removing, so that whole
            // words fill up and empty again.
            let bit = if rng.below(4) == 0 {
                rng.below(300)
            } else {
                rng.below(130)
            } as usize;
            let filling = (round / 2_000) % 2 == 0;
            if filling || rng.below(4) == 0 {
                set.insert(bit);
                model.insert(bit);
            } else {
                set.remove(bit);
                model.remove(&bit);
            }
            let rebuilt = build(&model);
            let compact = set.compact();
            assert!(
                set == rebuilt && compact == rebuilt && compact == set,
                "round {round}"
            );
            assert_eq!(set.zobrist, rebuilt.zobrist);
            assert_eq!(compact.zobrist, rebuilt.zobrist);
            assert!((0..320).all(|b| set.contains(b) == model.contains(&b)));
            assert!((0..320).all(|b| compact.contains(b) == model.contains(&b)));
            let (old_model, old) = &previous;
            assert_eq!(old == &compact, old_model == &model);
            assert_eq!(old.is_subset(&set), old_model.is_subset(&model));
            assert_eq!(compact.is_subset(old), model.is_subset(old_model));
            if rng.below(8) == 0 {
                previous = (model.clone(), compact);
            }
            full_words = full_words.max(set.ones);
        }
        // Whole words did fill up (and, in the removing phases, empty again).
        assert!(full_words >= 2, "{full_words}");
        // Drain the set, from the top down now and then, checking as it goes.
        while let Some(&highest) = model.last() {
            let bit = if rng.below(2) == 0 {
                highest
            } else {
                let members: Vec<usize> = model.iter().copied().collect();
                members[rng.below(members.len() as u64) as usize]
            };
            set.remove(bit);
            model.remove(&bit);
            let rebuilt = build(&model);
            assert!(set == rebuilt && set.compact() == rebuilt);
            assert_eq!(set.zobrist, rebuilt.zobrist);
            assert_eq!(set.middle().len(), rebuilt.middle().len());
        }
        assert!(set == Bitset::default() && set.middle().is_empty());
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
    /// computed by applying the operations in that order. Values written are small and distinct.
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

    /// Whether `history` (one key) has a linearization, by trying every order: the oracle the
    /// checker is compared with. Exponential; for a handful of operations only.
    fn brute_force(history: &[Operation]) -> bool {
        fn returned(op: &Operation) -> Option<u64> {
            op.returned.map(|(time, _)| time.max(op.invoked))
        }
        fn search(history: &[Operation], used: &mut Vec<bool>, state: Option<u64>) -> bool {
            if (0..history.len()).all(|i| used[i] || history[i].returned.is_none()) {
                return true;
            }
            for i in 0..history.len() {
                let op = &history[i];
                // Every unused operation that returned strictly before `op` was invoked must
                // come first.
                let blocked = (0..history.len()).any(|j| {
                    !used[j] && j != i && returned(&history[j]).is_some_and(|t| t < op.invoked)
                });
                if used[i] || blocked {
                    continue;
                }
                let output = op.returned.map(|(_, output)| output);
                let after = match (op.input, output) {
                    (OpInput::Put(v), None | Some(OpOutput::Written)) => Some(Some(v)),
                    (OpInput::Get, None) => Some(state),
                    (OpInput::Get, Some(OpOutput::Value(seen))) => (seen == state).then_some(state),
                    (OpInput::Cas { expected, new }, None) => Some(if state == Some(expected) {
                        Some(new)
                    } else {
                        state
                    }),
                    (OpInput::Cas { expected, new }, Some(OpOutput::Swapped(swapped))) => (swapped
                        == (state == Some(expected)))
                    .then_some(if swapped { Some(new) } else { state }),
                    _ => None,
                };
                if let Some(after) = after {
                    used[i] = true;
                    let found = search(history, used, after);
                    used[i] = false;
                    if found {
                        return true;
                    }
                }
            }
            false
        }
        search(history, &mut vec![false; history.len()], None)
    }

    #[test]
    fn random_small_histories_agree_with_brute_force() {
        let mut rng = Rng(7);
        let (mut linearizable, mut not) = (0, 0);
        for _ in 0..300_000 {
            let operations = 1 + rng.below(7) as usize;
            let history: Vec<Operation> = (0..operations)
                .map(|_| {
                    let value = 1 + rng.below(3);
                    let input = match rng.below(3) {
                        0 => OpInput::Put(value),
                        1 => OpInput::Get,
                        _ => OpInput::Cas {
                            expected: value,
                            new: 1 + rng.below(3),
                        },
                    };
                    let output = match (input, rng.below(10)) {
                        // Now and then an answer of the wrong kind.
                        (_, 0) => OpOutput::Swapped(true),
                        (OpInput::Put(_), _) => OpOutput::Written,
                        (OpInput::Get, _) => {
                            OpOutput::Value((rng.below(4) > 0).then(|| 1 + rng.below(3)))
                        }
                        (OpInput::Cas { .. }, _) => OpOutput::Swapped(rng.below(2) == 0),
                    };
                    let invoked = rng.below(12);
                    // Now and then a return before the invocation.
                    let returned = (invoked + rng.below(6)).saturating_sub(rng.below(20) / 19 * 3);
                    Operation {
                        client: rng.below(3) as u32,
                        key: 0,
                        input,
                        invoked,
                        returned: (rng.below(4) > 0).then_some((returned, output)),
                    }
                })
                .collect();
            let expected = brute_force(&history);
            let verdict = check(&history);
            assert_eq!(
                verdict == Verdict::Linearizable,
                expected,
                "{verdict:?} on {history:#?}"
            );
            if expected {
                linearizable += 1;
            } else {
                not += 1;
            }
        }
        // Both verdicts are well represented.
        assert!(
            linearizable > 30_000 && not > 30_000,
            "{linearizable} / {not}"
        );
    }
}
