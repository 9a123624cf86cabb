//! The engine's shell: it loads definitions, generates ids, runs the core's state machine
//! inside store transactions, and performs the work and timers the core asks for.

mod app_triggers;
mod bounded;
mod callbacks;
mod definitions;
mod deliveries;
mod notify;
mod schedules;
mod timers;
mod triggers;
mod webhook;
mod work;

pub use app_triggers::{app_trigger_entries, AppDelivery, AppRefusal, AppRun, AppRuns};
pub use callbacks::{CallbackClaims, CallbackRefusal};
pub use deliveries::{run_deliveries, signature};
pub use notify::{NotificationSettings, Notifications, SLACK_API_BASE_URL_DEFAULT};
pub use schedules::{run_schedules, schedule_entries};
pub use timers::run_timers;
pub use triggers::{Inbound, InboundOutcome};
pub use work::AgentRunner;

use crate::clock::Clock;
use crate::outbound::Outbound;
use assent_core::address::AddressPolicy;
use assent_core::engine::{self, Command, CommandError, DispatchParams, Effects, ExecutionState};
use assent_core::ids;
use assent_core::model::{DefinitionSpec, NodeConfig, WebhookAuthMode, WebhookMode};
use assent_core::schema::executions::DispatchRequest;
use assent_store::{
    AnyStore, DefinitionHead, DefinitionStatus, DispatchOutcome, ExecutionChanges, ExecutionRecord,
    ExecutionWrite, HeadDispatch, NewEvent, Store, StoreError, TimerSet,
};
use bounded::Bounded;
use definitions::{DefinitionCache, Runnable};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::Notify;

/// Why a dispatch or a command did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Command(CommandError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Precondition(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

/// The answer to a dispatch.
pub struct Dispatched {
    pub execution_id: String,
    pub correlation_id: String,
    pub deduplicated: bool,
}

pub struct Engine {
    pub store: Arc<AnyStore>,
    pub clock: Arc<dyn Clock>,
    policy: Arc<AddressPolicy>,
    outbound: Outbound,
    definitions: DefinitionCache,
    /// `(execution_id, correlation_id)` by workspace and idempotency key, for the keys this
    /// process dispatched or replayed: a replay of one needs no read.
    keys: Bounded<(String, String), (String, String)>,
    /// Woken whenever new timers or work may be due, so the timer loop need not poll.
    wake: Arc<Notify>,
    /// Woken when deliveries may have become claimable.
    deliveries_wake: Arc<Notify>,
    agent_runner: Option<AgentRunner>,
    notifier: notify::Notifier,
    /// Woken when schedules may have changed or come due, for the schedule loop.
    schedules_wake: Arc<Notify>,
    callbacks: callbacks::Callbacks,
}

impl Engine {
    pub fn new(
        store: Arc<AnyStore>,
        clock: Arc<dyn Clock>,
        outbound: Outbound,
        agent_runner: Option<AgentRunner>,
        notifications: Notifications,
    ) -> Engine {
        let notifier = notify::Notifier::new(notifications, outbound.clone(), clock.clone());
        Engine {
            store,
            clock,
            policy: outbound.policy().clone(),
            outbound,
            notifier,
            definitions: DefinitionCache::default(),
            keys: Bounded::default(),
            wake: Arc::new(Notify::new()),
            deliveries_wake: Arc::new(Notify::new()),
            agent_runner,
            schedules_wake: Arc::new(Notify::new()),
            callbacks: callbacks::Callbacks::default(),
        }
    }

    /// The client for addresses users gave.
    pub fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// Tells the timer and delivery loops to look again (time moved, or new timers or
    /// deliveries were written).
    pub fn wake(&self) {
        self.wake.notify_one();
        self.deliveries_wake.notify_one();
    }

    /// Wakes only the loops a write gave work to.
    fn wake_for(&self, wakes: Wakes) {
        if wakes.timers {
            self.wake.notify_one();
        }
        if wakes.deliveries {
            self.deliveries_wake.notify_one();
        }
    }

    /// Starts an execution, or answers a replay of an idempotency key with the original.
    pub async fn dispatch(
        &self,
        workspace_id: &str,
        req: DispatchRequest,
    ) -> Result<Dispatched, RunError> {
        self.dispatch_keyed(workspace_id, req, None).await
    }

    /// [`Engine::dispatch`], keeping the idempotency key until `key_expires_at_ms` when given
    /// (the keys triggers make) rather than as long as the execution.
    async fn dispatch_keyed(
        &self,
        workspace_id: &str,
        req: DispatchRequest,
        key_expires_at_ms: Option<i64>,
    ) -> Result<Dispatched, RunError> {
        // Keys that expire (triggers') are not remembered; a client's key names its
        // execution for good.
        let remembered = match (&req.idempotency_key, key_expires_at_ms) {
            (Some(key), None) => Some((workspace_id.to_owned(), key.clone())),
            _ => None,
        };
        if let Some(original) = remembered.as_ref().and_then(|key| self.keys.get(key)) {
            return Ok(replayed(original));
        }
        let dispatched = self.dispatch_to_store(workspace_id, req, key_expires_at_ms).await?;
        if let Some(key) = remembered {
            let ids = (dispatched.execution_id.clone(), dispatched.correlation_id.clone());
            self.keys.insert(key, ids);
        }
        Ok(dispatched)
    }

    /// A dispatch the store answers: a new execution or the one its key names.
    async fn dispatch_to_store(
        &self,
        workspace_id: &str,
        req: DispatchRequest,
        key_expires_at_ms: Option<i64>,
    ) -> Result<Dispatched, RunError> {
        let now_ms = self.clock.now_ms();
        if let Some(done) =
            self.dispatch_blind(workspace_id, &req, key_expires_at_ms, now_ms).await?
        {
            return Ok(done);
        }
        let key = req.idempotency_key.as_deref();
        let lookup =
            self.store.dispatch_lookup(workspace_id, key, &req.definition_id, now_ms).await?;
        if let Some(original) = lookup.replay {
            return Ok(replayed(original));
        }
        let runnable = self
            .active_definition(workspace_id, &req.definition_id, lookup.definition)
            .await
            .inspect_err(|_| self.definitions.forget_head(workspace_id, &req.definition_id))?;
        check_webhook_secrets(&runnable, req.webhook.is_some())?;
        let mut new = NewExecution::build(workspace_id, &req, &runnable, now_ms)?;
        if self.store.dispatches_at_head() {
            // One statement at the version just read; the transaction below takes what it
            // leaves (a key that expired, or one a racing dispatch is writing).
            self.definitions.remember_head(workspace_id, &req.definition_id, runnable.clone());
            let at_head = self.dispatch_at_head(workspace_id, &runnable, new, key_expires_at_ms);
            new = match at_head.await? {
                Ok(done) => return Ok(done),
                Err(unsettled) => unsettled,
            };
        }
        let outcome =
            self.store.dispatch_execution(workspace_id, new.write, key_expires_at_ms).await;
        match outcome.map_err(|e| definition_error(e, &req.definition_id))? {
            DispatchOutcome::Created => Ok(self.created(workspace_id, new.fresh, runnable)),
            DispatchOutcome::Replayed { execution_id, correlation_id } => {
                Ok(replayed((execution_id, correlation_id)))
            }
        }
    }

    /// A dispatch without a read before it, where the store prefers that: built from the
    /// definition version this process last dispatched, and written only if the definition
    /// is still at that version. `None` when that did not settle the dispatch (nothing
    /// dispatched here yet, the definition moved on, a key to replace or being written).
    async fn dispatch_blind(
        &self,
        workspace_id: &str,
        req: &DispatchRequest,
        key_expires_at_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<Dispatched>, RunError> {
        if !self.store.dispatches_at_head() {
            return Ok(None);
        }
        let Some(runnable) = self.definitions.head(workspace_id, &req.definition_id) else {
            return Ok(None);
        };
        // A replay answers before this error does: the lookup tells them apart.
        if check_webhook_secrets(&runnable, req.webhook.is_some()).is_err() {
            return Ok(None);
        }
        // The core's refusals, like replays, are the lookup path's to report.
        let Ok(new) = NewExecution::build(workspace_id, req, &runnable, now_ms) else {
            return Ok(None);
        };
        let at_head = self.dispatch_at_head(workspace_id, &runnable, new, key_expires_at_ms);
        Ok(at_head.await?.ok())
    }

    /// Writes `new` if its definition is still at the version `runnable` was compiled from
    /// and its key is new; gives `new` back when that settled nothing.
    async fn dispatch_at_head(
        &self,
        workspace_id: &str,
        runnable: &Arc<Runnable>,
        new: NewExecution,
        key_expires_at_ms: Option<i64>,
    ) -> Result<Result<Dispatched, NewExecution>, StoreError> {
        let at_head =
            self.store.dispatch_at_head(workspace_id, runnable.head, &new.write, key_expires_at_ms);
        Ok(match at_head.await? {
            HeadDispatch::Created => Ok(self.created(workspace_id, new.fresh, runnable.clone())),
            HeadDispatch::Replayed { execution_id, correlation_id } => {
                Ok(replayed((execution_id, correlation_id)))
            }
            HeadDispatch::Unsettled => Err(new),
        })
    }

    /// The answer to a dispatch that wrote a new execution, once this process knows of it.
    fn created(&self, workspace_id: &str, fresh: Fresh, runnable: Arc<Runnable>) -> Dispatched {
        let key = (workspace_id.to_owned(), fresh.execution_id.clone());
        self.definitions.remember_pinned(key, runnable);
        self.wake_for(fresh.wakes);
        Dispatched {
            execution_id: fresh.execution_id,
            correlation_id: fresh.correlation_id,
            deduplicated: false,
        }
    }

    /// The execution as its state document holds it.
    pub async fn execution(
        &self,
        workspace_id: &str,
        execution_id: &str,
    ) -> Result<ExecutionState, RunError> {
        let record = self.store.get_execution(workspace_id, execution_id).await?;
        let record = record.ok_or_else(|| execution_not_found(execution_id))?;
        state_of(&record)
    }

    /// Applies one command to an execution, in one transaction with everything it causes;
    /// returns the command's result.
    pub async fn apply(
        &self,
        workspace_id: &str,
        execution_id: &str,
        command: Command,
    ) -> Result<Value, RunError> {
        let runnable = self.pinned_definition(workspace_id, execution_id).await?;
        let now_ms = self.clock.now_ms();
        let outcome = self
            .store
            .update_execution(workspace_id, execution_id, move |record| {
                let (changes, result) = apply_to_record(&runnable, record, command, now_ms, None)?;
                let wakes = Wakes::for_changes(&changes);
                Ok::<_, RunError>((changes, (result, wakes)))
            })
            .await;
        let (result, wakes) = flatten(outcome, execution_id)?;
        self.wake_for(wakes);
        Ok(result)
    }

    /// The active definition with this id, to dispatch.
    async fn current_definition(
        &self,
        workspace_id: &str,
        definition_id: &str,
    ) -> Result<Arc<Runnable>, RunError> {
        let now_ms = self.clock.now_ms();
        let lookup = self.store.dispatch_lookup(workspace_id, None, definition_id, now_ms).await?;
        self.active_definition(workspace_id, definition_id, lookup.definition).await
    }

    /// The definition to dispatch, given its `head` as read: compiled already unless this
    /// process has not run that version yet.
    async fn active_definition(
        &self,
        workspace_id: &str,
        definition_id: &str,
        head: Option<DefinitionHead>,
    ) -> Result<Arc<Runnable>, RunError> {
        match head {
            None => return Err(definition_not_found(definition_id)),
            Some(head) if head.status == DefinitionStatus::Tombstoned => {
                return Err(tombstoned(definition_id))
            }
            Some(head) => {
                if let Some(runnable) = self.definitions.cached(workspace_id, definition_id, &head)
                {
                    return Ok(runnable);
                }
            }
        }
        // Read in full; a write since the head was read may have changed or removed it.
        let Some(record) = self.store.get_definition(workspace_id, definition_id).await? else {
            let status = self.store.definition_status(workspace_id, definition_id).await?;
            return Err(match status {
                Some(DefinitionStatus::Tombstoned) => tombstoned(definition_id),
                _ => definition_not_found(definition_id),
            });
        };
        self.definitions.runnable(workspace_id, &record, &self.policy)
    }

    /// The definition version an execution was dispatched with.
    async fn pinned_definition(
        &self,
        workspace_id: &str,
        execution_id: &str,
    ) -> Result<Arc<Runnable>, RunError> {
        let key = (workspace_id.to_owned(), execution_id.to_owned());
        if let Some(runnable) = self.definitions.pinned(&key) {
            return Ok(runnable);
        }
        let pin = self.store.pinned_version(workspace_id, execution_id).await?;
        let pin = pin.ok_or_else(|| execution_not_found(execution_id))?;
        let no_longer_stored = || {
            RunError::Precondition(format!(
                "Definition {} version {} is no longer stored",
                pin.definition_id, pin.version
            ))
        };
        let head = pin.stored.ok_or_else(no_longer_stored)?;
        let runnable = match self.definitions.cached(workspace_id, &pin.definition_id, &head) {
            Some(runnable) => runnable,
            None => {
                let version = self
                    .store
                    .get_definition_version(workspace_id, &pin.definition_id, pin.version)
                    .await?;
                let version = version.ok_or_else(no_longer_stored)?;
                self.definitions.runnable(workspace_id, &version, &self.policy)?
            }
        };
        self.definitions.remember_pinned(key, runnable.clone());
        Ok(runnable)
    }
}

/// Which loops a write gave work to.
#[derive(Clone, Copy)]
struct Wakes {
    timers: bool,
    deliveries: bool,
}

impl Wakes {
    fn for_changes(changes: &ExecutionChanges) -> Wakes {
        Wakes { timers: !changes.timers_set.is_empty(), deliveries: !changes.deliveries.is_empty() }
    }
}

/// The longest a claim loop (timers, deliveries, schedules) sleeps without looking: it
/// covers work written by other processes and clocks that jump.
const IDLE_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// Sleeps until `next_due_ms` by the engine's clock, a wake-up on `wake`, or
/// `IDLE_WAIT_MAX`, whichever comes first.
async fn wait_until_due(engine: &Engine, next_due_ms: Option<i64>, wake: &Notify) {
    let ahead_ms = next_due_ms.map(|due_ms| (due_ms - engine.clock.now_ms()).max(0) as u64);
    let wait = ahead_ms
        .map_or(IDLE_WAIT_MAX, |ms| std::time::Duration::from_millis(ms).min(IDLE_WAIT_MAX));
    if !wait.is_zero() {
        let _ = tokio::time::timeout(wait, wake.notified()).await;
    }
}

/// A new execution as the store writes it, with what its answer and wake-ups need.
struct NewExecution {
    write: ExecutionWrite,
    fresh: Fresh,
}

/// What is left to do once a new execution is written.
struct Fresh {
    execution_id: String,
    correlation_id: String,
    wakes: Wakes,
}

impl NewExecution {
    /// Runs the core's dispatch of `req` on `runnable`, minting the ids `req` leaves out.
    fn build(
        workspace_id: &str,
        req: &DispatchRequest,
        runnable: &Runnable,
        now_ms: i64,
    ) -> Result<NewExecution, RunError> {
        let params = dispatch_params(req, runnable.head.version, now_ms);
        let (state, effects) = engine::dispatch(
            &runnable.spec,
            &runnable.compiled,
            params,
            now_ms as u64,
            &random_suffix(6),
        )
        .map_err(RunError::Command)?;
        let record = new_record(workspace_id, &state, now_ms)?;
        let changes = changes_from(&effects, &runnable.spec, &state, now_ms);
        let wakes = Wakes::for_changes(&changes);
        Ok(NewExecution {
            write: ExecutionWrite { record, changes },
            fresh: Fresh {
                execution_id: state.execution_id,
                correlation_id: state.correlation_id,
                wakes,
            },
        })
    }
}

/// The ids and run-wide inputs of a new execution: given ones kept, missing ones minted.
fn dispatch_params(req: &DispatchRequest, definition_version: i64, now_ms: i64) -> DispatchParams {
    let execution_id = ids::execution_id(now_ms, &random_suffix(ids::ID_RANDOM_LEN));
    let correlation_id = req
        .correlation_id
        .clone()
        .unwrap_or_else(|| ids::correlation_id(now_ms, &random_suffix(ids::ID_RANDOM_LEN)));
    let idempotency_key =
        req.idempotency_key.clone().unwrap_or_else(|| ids::auto_idempotency_key(&execution_id));
    DispatchParams {
        execution_id,
        correlation_id,
        idempotency_key,
        definition_version: definition_version as u32,
        trigger_context: Value::Object(req.trigger_context.clone()),
        organization_id: req.organization_id.clone(),
        document_id: req.document_id.clone(),
        folder_id: req.folder_id.clone(),
        webhook: req.webhook.clone(),
    }
}

/// Runs `command` against the state document in `record`, writing the new state back and
/// returning what to commit with it. `clear_timer` is the timer that delivered the command,
/// removed even when the command no longer applies.
fn apply_to_record(
    runnable: &Runnable,
    record: &mut ExecutionRecord,
    command: Command,
    now_ms: i64,
    clear_timer: Option<&str>,
) -> Result<(ExecutionChanges, Value), RunError> {
    let mut state = state_of(record)?;
    let applied =
        engine::apply(&runnable.spec, &runnable.compiled, &mut state, command, now_ms as u64);
    let effects = match (applied, clear_timer) {
        (Ok(effects), _) => effects,
        (Err(_), Some(key)) => {
            let changes =
                ExecutionChanges { timers_cleared: vec![key.to_owned()], ..Default::default() };
            return Ok((changes, Value::Null));
        }
        (Err(e), None) => return Err(RunError::Command(e)),
    };
    let mut changes = changes_from(&effects, &runnable.spec, &state, now_ms);
    if let Some(key) = clear_timer {
        changes.timers_cleared.push(key.to_owned());
    }
    record.status = state.status;
    record.updated_at_ms = now_ms;
    record.state = serde_json::to_string(&state).map_err(|e| RunError::Internal(e.to_string()))?;
    Ok((changes, effects.result))
}

fn definition_not_found(definition_id: &str) -> RunError {
    RunError::NotFound(format!("Definition {definition_id} not found"))
}

fn state_of(record: &ExecutionRecord) -> Result<ExecutionState, RunError> {
    serde_json::from_str(&record.state).map_err(|e| {
        RunError::Internal(format!("execution {} state unreadable: {e}", record.execution_id))
    })
}

fn new_record(
    workspace_id: &str,
    state: &ExecutionState,
    now_ms: i64,
) -> Result<ExecutionRecord, RunError> {
    Ok(ExecutionRecord {
        workspace_id: workspace_id.to_owned(),
        execution_id: state.execution_id.clone(),
        definition_id: state.definition_id.clone(),
        definition_version: i64::from(state.definition_version),
        status: state.status,
        correlation_id: state.correlation_id.clone(),
        idempotency_key: state.idempotency_key.clone(),
        started_at_ms: now_ms,
        updated_at_ms: now_ms,
        next_seq: state.next_seq as i64,
        state: serde_json::to_string(state).map_err(|e| RunError::Internal(e.to_string()))?,
    })
}

/// The store's form of a command's effects. Work for the shell is kept as a timer due now,
/// so that it survives a crash between the commit and the work; events for the webhook
/// become deliveries.
fn changes_from(
    effects: &Effects,
    spec: &DefinitionSpec,
    state: &ExecutionState,
    now_ms: i64,
) -> ExecutionChanges {
    let events = effects
        .events
        .iter()
        .map(|e| NewEvent {
            seq: e.seq as i64,
            event_type: e.event_type.clone(),
            step_id: e.step_id.clone(),
            timestamp_ms: e.timestamp as i64,
            data: e.data.clone(),
            external: e.external,
        })
        .collect();
    let mut timers_set: Vec<TimerSet> = effects
        .timers_set
        .iter()
        .map(|t| TimerSet {
            timer_key: t.key.clone(),
            due_at_ms: t.due_at_ms as i64,
            payload: json!({ "kind": t.kind, "stepId": t.step_id }),
        })
        .collect();
    timers_set.extend(effects.work.iter().map(|item| work::as_timer(item, now_ms)));
    debug_assert!(state.next_seq as usize >= effects.events.len());
    ExecutionChanges {
        events,
        timers_set,
        timers_cleared: effects.timers_cleared.clone(),
        deliveries: deliveries::deliveries_for(&effects.events, spec, state),
    }
}

/// DECISIONS §8: an hmac or async webhook node needs a secret, from the dispatch or from the
/// definition's `webhookConfig`.
fn check_webhook_secrets(runnable: &Runnable, dispatch_has_secret: bool) -> Result<(), RunError> {
    if dispatch_has_secret || runnable.spec.webhook_config.is_some() {
        return Ok(());
    }
    for node in &runnable.spec.nodes {
        let NodeConfig::Webhook(config) = &node.config else { continue };
        let needs_secret =
            config.auth_mode == WebhookAuthMode::Hmac || config.mode == WebhookMode::Async;
        if needs_secret {
            return Err(RunError::Precondition(format!(
                "webhook node {} needs a secret: give webhookSecret with webhookUrl, or a webhookConfig on the definition",
                node.node_id
            )));
        }
    }
    Ok(())
}

fn flatten<T>(
    outcome: Result<Result<T, RunError>, StoreError>,
    execution_id: &str,
) -> Result<T, RunError> {
    match outcome {
        Ok(result) => result,
        Err(StoreError::NotFound) => Err(execution_not_found(execution_id)),
        Err(e) => Err(RunError::Store(e)),
    }
}

fn definition_error(err: StoreError, definition_id: &str) -> RunError {
    match err {
        StoreError::DefinitionNotActive => tombstoned(definition_id),
        StoreError::NotFound => RunError::NotFound(format!("Definition {definition_id} not found")),
        other => RunError::Store(other),
    }
}

fn tombstoned(definition_id: &str) -> RunError {
    RunError::Precondition(format!("Definition {definition_id} is deleted"))
}

fn execution_not_found(execution_id: &str) -> RunError {
    RunError::NotFound(format!("Execution {execution_id} not found"))
}

fn replayed((execution_id, correlation_id): (String, String)) -> Dispatched {
    Dispatched { execution_id, correlation_id, deduplicated: true }
}

/// `len` characters of `[a-z0-9]` from the operating system's random source.
fn random_suffix(len: usize) -> String {
    let mut bytes = vec![0u8; ids::random_bytes_for(len)];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    ids::random_suffix_from(&bytes, len)
}
