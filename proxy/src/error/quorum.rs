//! Why a write sent to every replica (`writes = "all"`, SPEC §5) got no
//! `2xx` answer for its client: fewer than `write_quorum` instances answered
//! `2xx`, or the key's preference list is shorter than the quorum.

use std::fmt;

use super::AttemptError;

/// A replicated write that cannot reach its quorum; answered `502`.
#[derive(Debug, Clone)]
pub struct QuorumError {
    /// The service.
    pub service: String,
    /// `write_quorum`: the `2xx` answers needed.
    pub needed: usize,
    /// The instances of the key's preference list.
    pub replicas: usize,
    /// `2xx` answers received.
    pub succeeded: usize,
    /// Each failed replica write, in the order they ended: an answer that
    /// is not `2xx`, or none.
    pub failures: Vec<AttemptError>,
    /// Replica writes still in flight, finishing in the background.
    pub in_flight: usize,
}

impl fmt::Display for QuorumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let QuorumError {
            service,
            needed,
            replicas,
            succeeded,
            failures,
            in_flight,
        } = self;
        if needed > replicas {
            return write!(
                f,
                "service {service}: write_quorum {needed} is more than the {replicas} instance(s) of the key's preference list; nothing was written"
            );
        }
        write!(
            f,
            "service {service}: write quorum not reached: {succeeded} of the {needed} 2xx answers needed from {replicas} instance(s)"
        )?;
        for failure in failures {
            write!(f, "\n  {}: {}", failure.instance, failure.reason)?;
        }
        if *in_flight > 0 {
            write!(
                f,
                "\n  {in_flight} write(s) still in flight, finishing in the background"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for QuorumError {}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;
    use crate::error::AttemptFailure;

    #[test]
    fn names_each_failure_and_what_is_left() {
        let error = QuorumError {
            service: "frob".to_owned(),
            needed: 2,
            replicas: 3,
            succeeded: 1,
            failures: vec![
                AttemptError {
                    instance: "b2.example.com:8081".to_owned(),
                    reason: AttemptFailure::Connect("connection refused".to_owned()),
                },
                AttemptError {
                    instance: "b3.example.com:8081".to_owned(),
                    reason: AttemptFailure::Status(StatusCode::INTERNAL_SERVER_ERROR),
                },
            ],
            in_flight: 0,
        };
        assert_eq!(
            error.to_string(),
            "service frob: write quorum not reached: 1 of the 2 2xx answers needed from 3 instance(s)\n  \
             b2.example.com:8081: connect failed: connection refused\n  \
             b3.example.com:8081: answered 500 Internal Server Error"
        );
    }

    #[test]
    fn a_quorum_larger_than_the_list_says_so() {
        let error = QuorumError {
            service: "frob".to_owned(),
            needed: 4,
            replicas: 3,
            succeeded: 0,
            failures: Vec::new(),
            in_flight: 0,
        };
        assert!(error
            .to_string()
            .contains("write_quorum 4 is more than the 3 instance(s)"));
    }
}
