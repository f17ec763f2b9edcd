//! What one request did on its way, for the access log: filled in by the
//! layers it passes (key, attempts, cache) and read once when it is
//! answered.

use std::time::Duration;

use http::Response;
use shardproxy_ring::{InstanceName, Token};
use tokio::time::Instant;

use super::attempt::Failed;

use crate::error::AttemptFailure;
use crate::interim::ToClient;
use crate::metrics::CacheOutcome;
use crate::pool::ResponseBody;

/// What one request did, for the access log.
#[derive(Debug, Default)]
pub struct Exchange {
    /// Whether the access log wants this: without it, no instance name is
    /// kept (no reference count touched per attempt).
    pub logged: bool,
    /// The key's position, once extracted.
    pub position: Option<Token>,
    /// The instance whose answer was returned (or the last one tried).
    pub instance: Option<InstanceName>,
    /// Attempts made.
    pub attempts: u32,
    /// What the cache did, for a cache-enabled service.
    pub cache: Option<CacheOutcome>,
    /// The service the request was routed to, when the access log wants
    /// it.
    pub service: Option<String>,
    /// Each attempt, in order, when the access log wants them.
    pub tried: Vec<Tried>,
    /// Where the `1xx` of the instances go: to the client (SPEC §13),
    /// when its connection can take them.
    pub interim: ToClient,
}

/// One attempt, as the access log shows it.
#[derive(Debug)]
pub struct Tried {
    /// The instance.
    pub upstream: InstanceName,
    /// How it ended.
    pub outcome: TriedOutcome,
    /// From sending to its answer's head (or its failure).
    pub took: Duration,
}

/// How an attempt ended, in the access log's words (SPEC §9.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriedOutcome {
    /// The instance answered with this status.
    Status(u16),
    /// The connection was refused.
    Refused,
    /// The connection could not be made otherwise.
    ConnectFailed,
    /// No answer within the try's timeout.
    Timeout,
    /// The connection was reset after the request may have been sent.
    Reset,
    /// The exchange failed otherwise (a broken or unframeable answer).
    Failed,
    /// The client's body failed the attempt, not the instance.
    Client,
}

impl TriedOutcome {
    /// The outcome of an attempt that failed with `failure`.
    fn of_failure(failure: &AttemptFailure) -> TriedOutcome {
        // The reasons are the error chains of I/O errors, whose words
        // (`Connection refused`, `Connection reset by peer`) are the OS's.
        match failure {
            AttemptFailure::Status(status) => TriedOutcome::Status(status.as_u16()),
            AttemptFailure::Connect(reason) if reason.contains("refused") => TriedOutcome::Refused,
            AttemptFailure::Connect(_) => TriedOutcome::ConnectFailed,
            AttemptFailure::Timeout(_) => TriedOutcome::Timeout,
            AttemptFailure::Broken(reason) if reason.contains("reset") => TriedOutcome::Reset,
            AttemptFailure::Broken(_) => TriedOutcome::Failed,
        }
    }

    /// The access log's word for it: the status, or how it failed.
    pub fn word(self) -> std::borrow::Cow<'static, str> {
        match self {
            TriedOutcome::Status(status) => status.to_string().into(),
            TriedOutcome::Refused => "refused".into(),
            TriedOutcome::ConnectFailed => "connect_error".into(),
            TriedOutcome::Timeout => "timeout".into(),
            TriedOutcome::Reset => "reset".into(),
            TriedOutcome::Failed => "failed".into(),
            TriedOutcome::Client => "client_error".into(),
        }
    }
}

impl Exchange {
    /// A record of a request that the access log wants (`logged`) or not,
    /// whose `1xx` go to the client by `interim`.
    pub fn new(logged: bool, interim: ToClient) -> Exchange {
        Exchange {
            logged,
            interim,
            ..Exchange::default()
        }
    }

    /// Notes an attempt on `instance`.
    pub(super) fn attempt(&mut self, instance: &InstanceName) {
        self.attempts += 1;
        self.answered_by(instance);
    }

    /// When an attempt is sent, if the access log wants to know how long
    /// it took (no clock read otherwise).
    pub(super) fn sending(&self) -> Option<Instant> {
        self.logged.then(Instant::now)
    }

    /// Notes how the attempt on `upstream` sent at `sent` ended.
    pub(super) fn attempted(
        &mut self,
        upstream: &InstanceName,
        result: &Result<Response<ResponseBody>, Failed>,
        sent: Option<Instant>,
    ) {
        let Some(sent) = sent else {
            return;
        };
        let outcome = match result {
            Ok(response) => TriedOutcome::Status(response.status().as_u16()),
            Err(Failed::Instance(failure) | Failed::StaleConnection(failure)) => {
                TriedOutcome::of_failure(failure)
            }
            Err(Failed::Client(_)) => TriedOutcome::Client,
        };
        self.tried.push(Tried {
            upstream: upstream.clone(),
            outcome,
            took: sent.elapsed(),
        });
    }

    /// Notes that `instance`'s answer is the one returned.
    pub(super) fn answered_by(&mut self, instance: &InstanceName) {
        if self.logged {
            self.instance = Some(instance.clone());
        }
    }
}
