//! One organization can never read or change another's people or campaigns,
//! and nothing is served without a verifiable credential.

use muster_e2e::{Stack, data_file};
use muster_proto::contacts::v1 as contacts;
use muster_proto::contacts::v1::contacts_service_client::ContactsServiceClient;
use muster_proto::messaging::v1 as messaging;
use muster_runtime::TenantId;
use muster_runtime::auth::{Bearer, Signer};
use tonic::Code;

#[tokio::test]
async fn one_organization_cannot_read_or_change_anothers_people_or_campaigns() -> anyhow::Result<()>
{
    let stack = Stack::start().await?;
    let (ours, theirs) = (TenantId::new(), TenantId::new());
    let job = stack
        .import(
            ours,
            &data_file("mailchimp-audience-unsubscribed.csv"),
            contacts::ImportPreset::MailchimpUnsubscribed,
        )
        .await?;
    let campaign = stack
        .create_campaign(ours, contacts::SegmentFilter::default())
        .await?;

    let mut our_contacts = stack.contacts(ours).await?;
    let person = our_contacts
        .list_people(contacts::ListPeopleRequest {
            page_size: 1,
            ..Default::default()
        })
        .await?
        .into_inner()
        .people
        .remove(0);

    let mut their_contacts = stack.contacts(theirs).await?;
    let listed = their_contacts
        .list_people(contacts::ListPeopleRequest::default())
        .await?
        .into_inner();
    assert!(
        listed.people.is_empty(),
        "another organization's people were listed"
    );
    let count = their_contacts
        .count_segment(contacts::CountSegmentRequest::default())
        .await?
        .into_inner();
    assert_eq!(count.count, 0);
    let get = their_contacts
        .get_person(contacts::GetPersonRequest {
            id: person.id.clone(),
        })
        .await;
    assert_eq!(get.unwrap_err().code(), Code::NotFound);
    let import = their_contacts
        .get_import(contacts::GetImportRequest { id: job.id.clone() })
        .await;
    assert_eq!(import.unwrap_err().code(), Code::NotFound);

    let mut their_messaging = stack.messaging(theirs).await?;
    let read = their_messaging
        .get_campaign(messaging::GetCampaignRequest {
            id: campaign.id.clone(),
        })
        .await;
    assert_eq!(read.unwrap_err().code(), Code::NotFound);
    for action in ["launch", "pause", "resume", "cancel"] {
        let request = messaging::CampaignActionRequest {
            id: campaign.id.clone(),
        };
        let result = match action {
            "launch" => their_messaging.launch_campaign(request).await,
            "pause" => their_messaging.pause_campaign(request).await,
            "resume" => their_messaging.resume_campaign(request).await,
            _ => their_messaging.cancel_campaign(request).await,
        };
        assert_eq!(result.unwrap_err().code(), Code::NotFound, "{action}");
    }
    let listed = their_messaging
        .list_campaigns(messaging::ListCampaignsRequest::default())
        .await?;
    assert!(listed.into_inner().campaigns.is_empty());

    let ours_still = stack
        .messaging(ours)
        .await?
        .get_campaign(messaging::GetCampaignRequest { id: campaign.id })
        .await?
        .into_inner();
    assert_eq!(
        ours_still.state,
        messaging::CampaignState::Draft as i32,
        "their calls changed it"
    );
    stack.stop().await
}

#[tokio::test]
async fn calls_without_a_verifiable_credential_are_refused() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let endpoint = stack.contacts_endpoint();

    let mut anonymous = ContactsServiceClient::connect(endpoint.clone()).await?;
    let refused = anonymous
        .list_people(contacts::ListPeopleRequest::default())
        .await;
    assert_eq!(refused.unwrap_err().code(), Code::Unauthenticated);

    let forged = Signer::new("not the service secret").mint(
        "x",
        Some(TenantId::new()),
        std::time::Duration::from_secs(60),
    );
    let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())?
        .connect()
        .await?;
    let mut forger = ContactsServiceClient::with_interceptor(channel, Bearer::new(&forged));
    let refused = forger
        .list_people(contacts::ListPeopleRequest::default())
        .await;
    assert_eq!(refused.unwrap_err().code(), Code::Unauthenticated);

    let tenantless = stack
        .signer
        .mint("gateway", None, std::time::Duration::from_secs(60));
    let channel = tonic::transport::Endpoint::from_shared(endpoint)?
        .connect()
        .await?;
    let mut service = ContactsServiceClient::with_interceptor(channel, Bearer::new(&tenantless));
    let refused = service
        .list_people(contacts::ListPeopleRequest::default())
        .await;
    assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied);
    stack.stop().await
}
