//! The services behind the gateway: one lazily connected channel each, and
//! clients that call them with a short-lived credential for one organization.

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use muster_proto::contacts::v1::consent_service_client::ConsentServiceClient;
use muster_proto::contacts::v1::contacts_service_client::ContactsServiceClient;
use muster_proto::contacts::v1::person_data_service_client as contacts_people;
use muster_proto::messaging::v1::messaging_service_client::MessagingServiceClient;
use muster_proto::messaging::v1::person_data_service_client as messaging_people;
use muster_runtime::auth::{Bearer, Signer};
use muster_runtime::confirmation::ConfirmationTokens;
use muster_runtime::unsubscribe::UnsubscribeTokens;
use muster_runtime::{ApiError, TenantId};

use crate::tenants::Organization;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::error::HttpError;
use crate::settings::ServicesSettings;

/// A contacts client carrying the gateway's credential.
pub type ContactsClient = ContactsServiceClient<InterceptedService<Channel, Bearer>>;
/// A messaging client carrying the gateway's credential.
pub type MessagingClient = MessagingServiceClient<InterceptedService<Channel, Bearer>>;

/// A client of contacts' consent ledger.
pub type ConsentClient = ConsentServiceClient<InterceptedService<Channel, Bearer>>;

/// A client of contacts' person-data (export, erasure) API.
pub type ContactsPeopleClient =
    contacts_people::PersonDataServiceClient<InterceptedService<Channel, Bearer>>;
/// A client of messaging's person-data (export) API.
pub type MessagingPeopleClient =
    messaging_people::PersonDataServiceClient<InterceptedService<Channel, Bearer>>;

/// How long a credential minted for one request stays valid.
const CREDENTIAL_TTL: Duration = Duration::from_secs(5 * 60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A service behind the gateway, named in errors and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    Contacts,
    Messaging,
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Contacts => "contacts",
            Self::Messaging => "messaging",
        })
    }
}

/// Channels to the services, shared by every request, and the signing key.
#[derive(Clone)]
pub struct Upstreams {
    contacts: Channel,
    messaging: Channel,
    signer: Signer,
}

impl Upstreams {
    /// Prepares channels that connect on first use, so the gateway starts
    /// (and answers 503) while a service is down.
    pub fn connect_lazy(settings: &ServicesSettings, signer: Signer) -> anyhow::Result<Self> {
        Ok(Self {
            contacts: channel(&settings.contacts_url).context("services.contacts_url")?,
            messaging: channel(&settings.messaging_url).context("services.messaging_url")?,
            signer,
        })
    }

    /// Clients acting for `organization`.
    pub fn for_organization(&self, organization: &Organization) -> TenantApi {
        let tenant = organization.id;
        let bearer = Bearer::new(&self.signer.mint("gateway", Some(tenant), CREDENTIAL_TTL));
        TenantApi {
            tenant,
            organization_name: organization.name.clone(),
            default_country: organization.default_country.clone(),
            contacts: ContactsServiceClient::with_interceptor(
                self.contacts.clone(),
                bearer.clone(),
            ),
            contacts_people: contacts_people::PersonDataServiceClient::with_interceptor(
                self.contacts.clone(),
                bearer.clone(),
            ),
            consent: ConsentServiceClient::with_interceptor(self.contacts.clone(), bearer.clone()),
            messaging: MessagingServiceClient::with_interceptor(
                self.messaging.clone(),
                bearer.clone(),
            ),
            messaging_people: messaging_people::PersonDataServiceClient::with_interceptor(
                self.messaging.clone(),
                bearer,
            ),
        }
    }

    /// A messaging client acting for `tenant` alone, for a public endpoint
    /// whose request proved its organization (a signed webhook).
    pub fn messaging_for(&self, tenant: TenantId) -> MessagingClient {
        let bearer = Bearer::new(&self.signer.mint("gateway", Some(tenant), CREDENTIAL_TTL));
        MessagingServiceClient::with_interceptor(self.messaging.clone(), bearer)
    }

    /// A consent client acting for `tenant` alone, for a public form that
    /// named an organization this gateway serves.
    pub fn consent_for(&self, tenant: TenantId) -> ConsentClient {
        let bearer = Bearer::new(&self.signer.mint("gateway", Some(tenant), CREDENTIAL_TTL));
        ConsentServiceClient::with_interceptor(self.contacts.clone(), bearer)
    }

    /// A consent client acting for no organization: a confirmation link
    /// names its own.
    pub fn public_consent(&self) -> ConsentClient {
        let bearer = Bearer::new(&self.signer.mint("gateway", None, CREDENTIAL_TTL));
        ConsentServiceClient::with_interceptor(self.contacts.clone(), bearer)
    }

    /// Reads the confirmation links messaging signs with the same secret.
    pub fn confirmation_tokens(&self) -> ConfirmationTokens {
        ConfirmationTokens::with_signer(self.signer.clone())
    }

    /// Reads the unsubscribe links messaging signs with the same secret.
    pub fn unsubscribe_tokens(&self) -> UnsubscribeTokens {
        UnsubscribeTokens::with_signer(self.signer.clone())
    }

    /// A messaging client acting for no organization, for the public pages.
    pub fn public_messaging(&self) -> MessagingClient {
        let bearer = Bearer::new(&self.signer.mint("gateway", None, CREDENTIAL_TTL));
        MessagingServiceClient::with_interceptor(self.messaging.clone(), bearer)
    }
}

fn channel(url: &str) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("{url:?} is not a valid service URL"))?;
    Ok(endpoint.connect_timeout(CONNECT_TIMEOUT).connect_lazy())
}

/// The service clients of an authenticated request, acting for its organization.
#[derive(Clone)]
pub struct TenantApi {
    pub tenant: TenantId,
    /// The organization's name as stored, for the e-mails sent on its behalf.
    pub organization_name: String,
    /// Where the organization's rows without a country are read to be.
    pub default_country: String,
    pub contacts: ContactsClient,
    pub contacts_people: ContactsPeopleClient,
    pub consent: ConsentClient,
    pub messaging: MessagingClient,
    pub messaging_people: MessagingPeopleClient,
}

impl<S: Send + Sync> FromRequestParts<S> for TenantApi {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.remove::<TenantApi>().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("route is missing the API key layer")).into()
        })
    }
}

/// Turns a service's answer into the message or an [`HttpError`] naming the service.
pub trait Reply<T> {
    fn reply(self, from: Upstream) -> Result<T, HttpError>;
}

impl<T> Reply<T> for Result<tonic::Response<T>, tonic::Status> {
    fn reply(self, from: Upstream) -> Result<T, HttpError> {
        self.map(tonic::Response::into_inner)
            .map_err(|status| HttpError::Upstream {
                upstream: from,
                status,
            })
    }
}
