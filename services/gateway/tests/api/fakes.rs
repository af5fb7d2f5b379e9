//! Fake contacts and messaging gRPC servers that check the gateway's
//! credential like the real ones and report what they were sent.

use muster_proto::contacts::v1 as contacts;
use muster_proto::contacts::v1::contacts_service_server::{ContactsService, ContactsServiceServer};
use muster_proto::contacts::v1::upload_import_request::Part;
use muster_proto::messaging::v1 as messaging;
use muster_proto::messaging::v1::messaging_service_server::{
    MessagingService, MessagingServiceServer,
};
use muster_runtime::TenantId;
use muster_runtime::auth::{Authenticate, Signer, caller};
use muster_runtime::unsubscribe::UnsubscribeTokens;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, Streaming};

use crate::helpers::SECRET;

/// How an upload reached the fake contacts service.
#[derive(Debug)]
pub enum Upload {
    /// The header arrived.
    Started,
    /// The stream ended normally after this many file bytes.
    Complete {
        tenant: Option<TenantId>,
        header: Box<contacts::ImportHeader>,
        bytes: u64,
    },
    /// The stream broke before its end.
    Broken { bytes: u64 },
}

/// A contacts service that reads uploads and reports them.
pub struct FakeContacts {
    uploads: mpsc::UnboundedSender<Upload>,
}

/// Starts a fake contacts service; returns its URL and its upload reports.
pub async fn spawn_contacts() -> (String, mpsc::UnboundedReceiver<Upload>) {
    let (uploads, reports) = mpsc::unbounded_channel();
    let fake = FakeContacts { uploads };
    let service = ContactsServiceServer::with_interceptor(fake, authenticate());
    let url = serve(tonic::transport::Server::builder().add_service(service)).await;
    (url, reports)
}

/// What the fake messaging service was asked, with the caller's organization.
#[derive(Debug, PartialEq)]
pub enum Call {
    Inspect {
        tenant: Option<TenantId>,
    },
    Unsubscribe {
        tenant: Option<TenantId>,
        method: String,
    },
    /// A bounce report; `provider` is empty for a raw message.
    IngestBounce {
        tenant: Option<TenantId>,
        provider: String,
        body: String,
    },
    /// A bounce listing, with the filters and page it named.
    ListBounces {
        tenant: Option<TenantId>,
        request: messaging::ListBouncesRequest,
    },
    GetDelivery {
        tenant: Option<TenantId>,
        id: String,
    },
}

/// Tokens the fake messaging service knows, besides any token signed with
/// [`SECRET`], which it answers like [`GOOD_TOKEN`].
pub const GOOD_TOKEN: &str = "good-token";
pub const ALREADY_TOKEN: &str = "already-token";
/// A bounce report containing this is about a delivery messaging does not know.
pub const UNKNOWN_DELIVERY: &str = "0190b5a0-dead-7000-8000-000000000000";
/// A bounce report containing this cannot be read.
pub const UNREADABLE: &str = "no report here";
/// The delivery every other bounce report is about.
pub const BOUNCED_DELIVERY: &str = "0190b5a0-0000-7000-8000-00000000b0b0";
/// The token of the page after the one the fake's bounce listing returns.
pub const NEXT_BOUNCES: &str = "1736845331123456.0190b5a0-0000-7000-8000-0000000b0b01";
/// The masked address of [`GOOD_TOKEN`], with markup to check escaping.
pub const MASKED: &str = "<b>j***@example.org";

/// A messaging service that answers unsubscribe calls and reports them.
pub struct FakeMessaging {
    calls: mpsc::UnboundedSender<Call>,
}

/// Starts a fake messaging service; returns its URL and its call reports.
pub async fn spawn_messaging() -> (String, mpsc::UnboundedReceiver<Call>) {
    let (calls, reports) = mpsc::unbounded_channel();
    let fake = FakeMessaging { calls };
    let service = MessagingServiceServer::with_interceptor(fake, authenticate());
    let url = serve(tonic::transport::Server::builder().add_service(service)).await;
    (url, reports)
}

fn authenticate() -> Authenticate {
    Authenticate(Signer::new(SECRET))
}

async fn serve(router: tonic::transport::server::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
    url
}

fn tenant_of<T>(request: &Request<T>) -> Option<TenantId> {
    caller(request).ok().and_then(|caller| caller.tenant)
}

fn not_faked() -> Status {
    Status::unimplemented("not faked")
}

#[tonic::async_trait]
impl ContactsService for FakeContacts {
    async fn upload_import(
        &self,
        request: Request<Streaming<contacts::UploadImportRequest>>,
    ) -> Result<Response<contacts::ImportJob>, Status> {
        let tenant = tenant_of(&request);
        let mut stream = request.into_inner();
        let Some(contacts::UploadImportRequest {
            part: Some(Part::Header(header)),
        }) = stream.message().await?
        else {
            return Err(Status::invalid_argument(
                "the first message must be the header",
            ));
        };
        let _ = self.uploads.send(Upload::Started);

        let mut bytes = 0;
        loop {
            match stream.message().await {
                Ok(Some(contacts::UploadImportRequest {
                    part: Some(Part::Chunk(chunk)),
                })) => bytes += chunk.len() as u64,
                Ok(Some(_)) => return Err(Status::invalid_argument("a second header")),
                Ok(None) => break,
                Err(status) => {
                    let _ = self.uploads.send(Upload::Broken { bytes });
                    return Err(status);
                }
            }
        }

        let job = contacts::ImportJob {
            id: "0190b5a0-0000-7000-8000-000000000001".into(),
            state: contacts::ImportState::Queued as i32,
            file_name: header.file_name.clone(),
            preset: header.preset,
            size_bytes: header.size_bytes,
            bytes_read: bytes,
            ..Default::default()
        };
        let _ = self.uploads.send(Upload::Complete {
            tenant,
            header: Box::new(header),
            bytes,
        });
        Ok(Response::new(job))
    }

    async fn get_person(
        &self,
        _: Request<contacts::GetPersonRequest>,
    ) -> Result<Response<contacts::Person>, Status> {
        Err(Status::not_found("person not found"))
    }

    async fn list_people(
        &self,
        _: Request<contacts::ListPeopleRequest>,
    ) -> Result<Response<contacts::ListPeopleResponse>, Status> {
        Err(not_faked())
    }

    async fn get_import(
        &self,
        _: Request<contacts::GetImportRequest>,
    ) -> Result<Response<contacts::ImportJob>, Status> {
        Err(not_faked())
    }

    async fn list_imports(
        &self,
        _: Request<contacts::ListImportsRequest>,
    ) -> Result<Response<contacts::ListImportsResponse>, Status> {
        Err(not_faked())
    }

    async fn list_import_issues(
        &self,
        _: Request<contacts::ListImportIssuesRequest>,
    ) -> Result<Response<contacts::ListImportIssuesResponse>, Status> {
        Err(not_faked())
    }

    async fn count_segment(
        &self,
        _: Request<contacts::CountSegmentRequest>,
    ) -> Result<Response<contacts::CountSegmentResponse>, Status> {
        Err(not_faked())
    }

    type StreamSegmentStream = tokio_stream::Empty<Result<contacts::SegmentMemberBatch, Status>>;

    async fn stream_segment(
        &self,
        _: Request<contacts::StreamSegmentRequest>,
    ) -> Result<Response<Self::StreamSegmentStream>, Status> {
        Err(not_faked())
    }

    async fn create_saved_segment(
        &self,
        _: Request<contacts::CreateSavedSegmentRequest>,
    ) -> Result<Response<contacts::SavedSegment>, Status> {
        Err(not_faked())
    }

    async fn list_saved_segments(
        &self,
        _: Request<contacts::ListSavedSegmentsRequest>,
    ) -> Result<Response<contacts::ListSavedSegmentsResponse>, Status> {
        Err(not_faked())
    }

    async fn get_saved_segment(
        &self,
        _: Request<contacts::GetSavedSegmentRequest>,
    ) -> Result<Response<contacts::SavedSegment>, Status> {
        Err(not_faked())
    }

    async fn delete_saved_segment(
        &self,
        _: Request<contacts::DeleteSavedSegmentRequest>,
    ) -> Result<Response<contacts::DeleteSavedSegmentResponse>, Status> {
        Err(not_faked())
    }

    async fn merge_people(
        &self,
        _: Request<contacts::MergePeopleRequest>,
    ) -> Result<Response<contacts::Merge>, Status> {
        Err(not_faked())
    }

    async fn list_duplicates(
        &self,
        _: Request<contacts::ListDuplicatesRequest>,
    ) -> Result<Response<contacts::ListDuplicatesResponse>, Status> {
        Err(not_faked())
    }

    async fn dismiss_duplicate(
        &self,
        _: Request<contacts::DismissDuplicateRequest>,
    ) -> Result<Response<contacts::Duplicate>, Status> {
        Err(not_faked())
    }

    async fn find_duplicates(
        &self,
        _: Request<contacts::FindDuplicatesRequest>,
    ) -> Result<Response<contacts::FindDuplicatesResponse>, Status> {
        Err(not_faked())
    }

    async fn get_duplicate_rules(
        &self,
        _: Request<contacts::GetDuplicateRulesRequest>,
    ) -> Result<Response<contacts::DuplicateRules>, Status> {
        Err(not_faked())
    }

    async fn set_duplicate_rules(
        &self,
        _: Request<contacts::DuplicateRules>,
    ) -> Result<Response<contacts::DuplicateRules>, Status> {
        Err(not_faked())
    }

    async fn define_custom_field(
        &self,
        _: Request<contacts::DefineCustomFieldRequest>,
    ) -> Result<Response<contacts::CustomField>, Status> {
        Err(not_faked())
    }

    async fn update_custom_field(
        &self,
        _: Request<contacts::UpdateCustomFieldRequest>,
    ) -> Result<Response<contacts::CustomField>, Status> {
        Err(not_faked())
    }

    async fn list_custom_fields(
        &self,
        _: Request<contacts::ListCustomFieldsRequest>,
    ) -> Result<Response<contacts::ListCustomFieldsResponse>, Status> {
        Err(not_faked())
    }

    async fn delete_custom_field(
        &self,
        _: Request<contacts::DeleteCustomFieldRequest>,
    ) -> Result<Response<contacts::DeleteCustomFieldResponse>, Status> {
        Err(not_faked())
    }

    async fn set_custom_fields(
        &self,
        _: Request<contacts::SetCustomFieldsRequest>,
    ) -> Result<Response<contacts::Person>, Status> {
        Err(not_faked())
    }
}

impl FakeMessaging {
    fn answer(token: &str) -> Result<Response<messaging::UnsubscribeResponse>, Status> {
        let genuine = UnsubscribeTokens::new(SECRET).read(token).is_some();
        let (masked, already) = match token {
            GOOD_TOKEN => (MASKED, false),
            ALREADY_TOKEN => ("a***@example.org", true),
            _ if genuine => (MASKED, false),
            _ => return Err(Status::invalid_argument("token: signature does not verify")),
        };
        let reply = messaging::UnsubscribeResponse {
            masked_email: masked.into(),
            already_unsubscribed: already,
        };
        Ok(Response::new(reply))
    }
}

#[tonic::async_trait]
impl MessagingService for FakeMessaging {
    async fn set_rate_limit(
        &self,
        _: Request<messaging::SetRateLimitRequest>,
    ) -> Result<Response<messaging::RateLimit>, Status> {
        Err(not_faked())
    }

    async fn list_rate_limits(
        &self,
        _: Request<messaging::ListRateLimitsRequest>,
    ) -> Result<Response<messaging::ListRateLimitsResponse>, Status> {
        Err(not_faked())
    }

    async fn inspect_unsubscribe(
        &self,
        request: Request<messaging::UnsubscribeRequest>,
    ) -> Result<Response<messaging::UnsubscribeResponse>, Status> {
        let _ = self.calls.send(Call::Inspect {
            tenant: tenant_of(&request),
        });
        Self::answer(&request.get_ref().token)
    }

    async fn unsubscribe(
        &self,
        request: Request<messaging::UnsubscribeRequest>,
    ) -> Result<Response<messaging::UnsubscribeResponse>, Status> {
        let tenant = tenant_of(&request);
        let method = request.get_ref().method.clone();
        let _ = self.calls.send(Call::Unsubscribe { tenant, method });
        Self::answer(&request.get_ref().token)
    }

    async fn ingest_bounce(
        &self,
        request: Request<messaging::IngestBounceRequest>,
    ) -> Result<Response<messaging::IngestBounceResponse>, Status> {
        use messaging::ingest_bounce_request::Source;
        let tenant = tenant_of(&request);
        let (provider, body) = match request.into_inner().source {
            Some(Source::RawMessage(raw)) => (String::new(), raw),
            Some(Source::Provider(notification)) => (notification.provider, notification.body),
            None => return Err(Status::invalid_argument("source: is required")),
        };
        let body = String::from_utf8_lossy(&body).into_owned();
        let unknown = body.contains(UNKNOWN_DELIVERY);
        let unreadable = body.contains(UNREADABLE);
        let _ = self.calls.send(Call::IngestBounce {
            tenant,
            provider,
            body,
        });
        if unknown {
            return Err(Status::not_found(format!(
                "delivery {UNKNOWN_DELIVERY} not found"
            )));
        }
        if unreadable {
            return Err(Status::invalid_argument("not a bounce or complaint report"));
        }
        let bounce = messaging::IngestedBounce {
            delivery_id: BOUNCED_DELIVERY.into(),
            kind: messaging::BounceKind::Permanent as i32,
            status: "5.1.1".into(),
            reason: "user unknown".into(),
            suppressed: true,
            duplicate: false,
        };
        Ok(Response::new(messaging::IngestBounceResponse {
            bounces: vec![bounce],
        }))
    }

    async fn list_bounces(
        &self,
        request: Request<messaging::ListBouncesRequest>,
    ) -> Result<Response<messaging::ListBouncesResponse>, Status> {
        let tenant = tenant_of(&request);
        let request = request.into_inner();
        let named = [
            &request.delivery_id,
            &request.person_id,
            &request.campaign_id,
        ]
        .into_iter()
        .filter(|id| !id.trim().is_empty())
        .count();
        let _ = self.calls.send(Call::ListBounces { tenant, request });
        if named != 1 {
            return Err(Status::invalid_argument(
                "delivery_id: name exactly one of delivery_id, person_id or campaign_id",
            ));
        }
        Ok(Response::new(messaging::ListBouncesResponse {
            bounces: vec![bounce()],
            next_page_token: NEXT_BOUNCES.into(),
        }))
    }

    async fn get_delivery(
        &self,
        request: Request<messaging::GetDeliveryRequest>,
    ) -> Result<Response<messaging::Delivery>, Status> {
        let tenant = tenant_of(&request);
        let id = request.into_inner().id;
        let _ = self.calls.send(Call::GetDelivery {
            tenant,
            id: id.clone(),
        });
        if id != BOUNCED_DELIVERY {
            return Err(Status::not_found(format!("delivery {id} not found")));
        }
        Ok(Response::new(messaging::Delivery {
            id,
            campaign_id: "0190b5a0-0000-7000-8000-00000000ca01".into(),
            person_id: "0190b5a0-0000-7000-8000-00000000fe01".into(),
            email: "camille.roux@example.fr".into(),
            state: messaging::DeliveryState::Sent as i32,
            attempts: 1,
            error: String::new(),
            send_time: Some(muster_runtime::time::to_proto(chrono::Utc::now())),
            provider_answer: "<b0b0@example.org> 250 2.0.0 Ok: queued".into(),
            bounces: vec![bounce()],
        }))
    }

    async fn create_template(
        &self,
        _: Request<messaging::CreateTemplateRequest>,
    ) -> Result<Response<messaging::Template>, Status> {
        Err(not_faked())
    }

    async fn get_template(
        &self,
        _: Request<messaging::GetTemplateRequest>,
    ) -> Result<Response<messaging::Template>, Status> {
        Err(not_faked())
    }

    async fn create_campaign(
        &self,
        _: Request<messaging::CreateCampaignRequest>,
    ) -> Result<Response<messaging::Campaign>, Status> {
        Err(not_faked())
    }

    async fn get_campaign(
        &self,
        _: Request<messaging::GetCampaignRequest>,
    ) -> Result<Response<messaging::Campaign>, Status> {
        Err(not_faked())
    }

    async fn list_campaigns(
        &self,
        _: Request<messaging::ListCampaignsRequest>,
    ) -> Result<Response<messaging::ListCampaignsResponse>, Status> {
        Err(not_faked())
    }

    async fn launch_campaign(
        &self,
        _: Request<messaging::CampaignActionRequest>,
    ) -> Result<Response<messaging::Campaign>, Status> {
        Err(Status::failed_precondition(
            "the campaign is already sending",
        ))
    }

    async fn pause_campaign(
        &self,
        _: Request<messaging::CampaignActionRequest>,
    ) -> Result<Response<messaging::Campaign>, Status> {
        Err(not_faked())
    }

    async fn resume_campaign(
        &self,
        _: Request<messaging::CampaignActionRequest>,
    ) -> Result<Response<messaging::Campaign>, Status> {
        Err(not_faked())
    }

    async fn cancel_campaign(
        &self,
        _: Request<messaging::CampaignActionRequest>,
    ) -> Result<Response<messaging::Campaign>, Status> {
        Err(not_faked())
    }
}

/// The one bounce the fake messaging service stores.
fn bounce() -> messaging::Bounce {
    messaging::Bounce {
        id: "0190b5a0-0000-7000-8000-0000000b0b01".into(),
        kind: messaging::BounceKind::Permanent as i32,
        email: "camille.roux@example.fr".into(),
        status: "5.1.1".into(),
        reason: "smtp; 550 5.1.1 User unknown".into(),
        source: "dsn".into(),
        receive_time: Some(muster_runtime::time::to_proto(chrono::Utc::now())),
        delivery_id: BOUNCED_DELIVERY.into(),
        campaign_id: "0190b5a0-0000-7000-8000-00000000ca01".into(),
        person_id: "0190b5a0-0000-7000-8000-00000000fe01".into(),
    }
}
