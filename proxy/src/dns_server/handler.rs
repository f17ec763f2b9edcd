//! The request handler: answers each query from the current snapshot of the
//! zone, or fails on purpose as the [`Mode`] says.

use std::future::Future;
use std::pin::Pin;

use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tracing::{debug, warn};

use super::handle::ZoneHandle;
use super::zone::Answer;
use super::Mode;

/// Answers queries from a [`ZoneHandle`].
#[derive(Debug)]
pub(super) struct Handler {
    pub(super) zone: ZoneHandle,
}

// `RequestHandler` is declared with `#[async_trait]`; this is the method that
// macro would generate, written out so the crate needs no `async-trait`.
impl RequestHandler for Handler {
    fn handle_request<'life0, 'life1, 'async_trait, R, T>(
        &'life0 self,
        request: &'life1 Request,
        response_handle: R,
    ) -> Pin<Box<dyn Future<Output = ResponseInfo> + Send + 'async_trait>>
    where
        R: ResponseHandler + 'async_trait,
        T: Time + 'async_trait,
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.answer(request, response_handle))
    }
}

impl Handler {
    async fn answer<R: ResponseHandler>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        // RFC 6891: answer EDNS with EDNS, which also lets a UDP answer be as
        // large as the client said it can take.
        let edns = request.edns.as_ref().map(|req| {
            let mut edns = Edns::new();
            edns.set_max_payload(req.max_payload().max(512));
            edns.set_version(0);
            edns
        });
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let mut metadata = Metadata::response_from_request(&request.metadata);

        if request.metadata.op_code != OpCode::Query {
            metadata.response_code = ResponseCode::NotImp;
            return send(response_handle, builder.build_no_records(metadata)).await;
        }
        let query = match request.request_info() {
            Ok(info) => info.query,
            Err(_) => {
                // Not exactly one question.
                metadata.response_code = ResponseCode::FormErr;
                return send(response_handle, builder.build_no_records(metadata)).await;
            }
        };

        match self.zone.on_query(query.name()) {
            Mode::Normal => {}
            Mode::ServFail => {
                debug!(name = %query.name(), "answering SERVFAIL on purpose");
                metadata.response_code = ResponseCode::ServFail;
                return send(response_handle, builder.build_no_records(metadata)).await;
            }
            Mode::Drop => {
                debug!(name = %query.name(), "dropping the query on purpose");
                metadata.response_code = ResponseCode::ServFail;
                return ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                });
            }
        }

        let query_type = query.query_type();
        let class_ok = matches!(query.query_class(), DNSClass::IN | DNSClass::ANY);
        let transfer = matches!(query_type, RecordType::AXFR | RecordType::IXFR);
        let zone = self.zone.snapshot();
        let answer = if class_ok && !transfer {
            zone.lookup(query.name(), query_type)
        } else {
            Answer::NotAuthoritative
        };

        let (answers, soa): (Vec<&Record>, Option<&Record>) = match answer {
            Answer::NotAuthoritative => {
                metadata.response_code = ResponseCode::Refused;
                return send(response_handle, builder.build_no_records(metadata)).await;
            }
            Answer::NoSuchName => {
                metadata.response_code = ResponseCode::NXDomain;
                (Vec::new(), Some(zone.soa()))
            }
            Answer::Records(records) if records.is_empty() => (records, Some(zone.soa())),
            Answer::Records(records) => (records, None),
        };
        metadata.authoritative = true;
        let response = builder.build(metadata, answers, [], soa, []);
        send(response_handle, response).await
    }
}

/// Sends `response`; a failure to send is logged, the client will time out.
async fn send<'a, R: ResponseHandler>(
    mut response_handle: R,
    response: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) -> ResponseInfo {
    let mut failed = *response.metadata();
    match response_handle.send_response(response).await {
        Ok(info) => info,
        Err(error) => {
            warn!(%error, "cannot send a DNS response");
            failed.message_type = MessageType::Response;
            failed.response_code = ResponseCode::ServFail;
            ResponseInfo::from(Header {
                metadata: failed,
                counts: HeaderCounts::default(),
            })
        }
    }
}
