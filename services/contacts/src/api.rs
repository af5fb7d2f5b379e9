//! The gRPC API of contacts (`muster.contacts.v1.ContactsService`).

use std::path::PathBuf;
use std::pin::Pin;

use futures::Stream;
use muster_proto::contacts::v1 as pb;
use muster_proto::contacts::v1::contacts_service_server::ContactsService;
use muster_proto::contacts::v1::upload_import_request::Part;
use muster_runtime::{ApiError, TenantId, auth};
use sqlx::{PgPool, QueryBuilder};
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use crate::consent::LegalBasis;
use crate::import::job::{self, ImportTask};
use crate::import::{ColumnMapping, Preset};
use crate::merge::{self, duplicates};
use crate::segment::Filter;
use crate::store::{custom_fields, imports, people, segments};

/// Members sent per streamed message.
const STREAM_BATCH: i64 = 1_000;

/// The service's handlers.
#[derive(Clone)]
pub struct Api {
    pub pool: PgPool,
    pub spool_dir: PathBuf,
    /// Transactions each import writes at once.
    pub import_writers: usize,
    /// Hashes addresses to find those erased (imports never bring them back).
    pub hasher: muster_runtime::privacy::AddressHasher,
}

fn parse_id(raw: &str, field: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw.trim())
        .map_err(|_| ApiError::invalid(field, format!("{raw:?} is not a valid id")))
}

/// The rows a page holds: 0 (unset) means 100, more than 1,000 means 1,000.
/// How long an upload's answer waits for the import to read the header.
const HEADER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn page_size(requested: i32) -> Result<i64, ApiError> {
    match requested {
        0 => Ok(100),
        n if n < 0 => Err(ApiError::invalid(
            "page_size",
            format!("{n} is negative; give 1 to 1000, or leave it out for 100"),
        )),
        n => Ok(i64::from(n.min(1_000))),
    }
}

type MemberStream = Pin<Box<dyn Stream<Item = Result<pb::SegmentMemberBatch, Status>> + Send>>;

#[tonic::async_trait]
impl ContactsService for Api {
    async fn get_person(
        &self,
        request: Request<pb::GetPersonRequest>,
    ) -> Result<Response<pb::Person>, Status> {
        let tenant = auth::tenant(&request)?;
        let id = parse_id(&request.get_ref().id, "id")?;
        Ok(Response::new(people::get(&self.pool, tenant, id).await?))
    }

    async fn list_people(
        &self,
        request: Request<pb::ListPeopleRequest>,
    ) -> Result<Response<pb::ListPeopleResponse>, Status> {
        let tenant = auth::tenant(&request)?;
        let request = request.into_inner();
        let filter =
            segments::resolve(&self.pool, tenant, &request.filter.unwrap_or_default()).await?;
        let after = match request.page_token.as_str() {
            "" => None,
            token => Some(parse_id(token, "page_token")?),
        };
        let limit = page_size(request.page_size)?;
        let country = default_country(&request.default_country, "default_country")?;
        let lookup = people::Lookup::parse(&request.email, &request.phone, &country)?;
        let found = people::list(&self.pool, tenant, &filter, &lookup, after, limit).await?;
        let next_page_token = match found.last() {
            Some(last) if found.len() as i64 == limit => last.id.clone(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListPeopleResponse {
            people: found,
            next_page_token,
        }))
    }

    async fn upload_import(
        &self,
        request: Request<Streaming<pb::UploadImportRequest>>,
    ) -> Result<Response<pb::ImportJob>, Status> {
        let tenant = auth::tenant(&request)?;
        let mut stream = request.into_inner();
        let header = match stream.message().await?.and_then(|m| m.part) {
            Some(Part::Header(header)) => header,
            _ => {
                return Err(
                    ApiError::invalid("header", "the first message must be the header").into(),
                );
            }
        };
        let preset = preset(&header)?;
        let custom_fields = custom_fields::load(&self.pool, tenant).await?;
        if let Preset::Custom(mapping) = &preset {
            for (key, _) in &mapping.custom_fields {
                if custom_fields.get(key).is_none() {
                    return Err(ApiError::invalid(
                        format!("header.mapping.custom_fields[{key}]"),
                        format!(
                            "no custom field has this key; the fields are: {}",
                            custom_fields.keys()
                        ),
                    )
                    .into());
                }
            }
        }
        let default_country = default_country(&header.default_country, "header.default_country")?;
        let legal_basis = import_legal_basis(&header.legal_basis)?;
        let notice = import_notice(&header.notice)?;
        let id = Uuid::now_v7();
        let source_label = match header.source_label.trim() {
            "" => header.file_name.clone(),
            label => label.to_owned(),
        };
        sqlx::query(
            "INSERT INTO imports (id, tenant_id, file_name, preset, source_label, state, size_bytes,
                                  legal_basis, notice)
             VALUES ($1, $2, $3, $4, $5, 'receiving', $6, $7, $8)",
        )
        .bind(id)
        .bind(tenant)
        .bind(&header.file_name)
        .bind(pb::ImportPreset::try_from(header.preset).unwrap_or_default().as_str_name())
        .bind(&source_label)
        .bind(header.size_bytes as i64)
        .bind(legal_basis.as_str())
        .bind(&notice)
        .execute(&self.pool)
        .await
        .map_err(ApiError::from)?;

        let path = self.spool_dir.join(format!("{id}.upload"));
        let spooled = spool(&mut stream, &path).await.and_then(|size| {
            // A cancelled stream reads like a finished one: the declared size tells them apart.
            match header.size_bytes {
                0 => Ok(size),
                declared if declared == size => Ok(size),
                declared => Err(ApiError::invalid(
                    "chunk",
                    format!(
                        "the upload stopped after {size} of {declared} bytes; send the file again"
                    ),
                )),
            }
        });
        let received = match spooled {
            Ok(size) => size,
            Err(error) => {
                let _ = tokio::fs::remove_file(&path).await;
                fail(&self.pool, id, &error.to_string()).await;
                return Err(error.into());
            }
        };
        sqlx::query(
            "UPDATE imports SET state = 'queued', size_bytes = $2, progressed_at = now()
             WHERE id = $1",
        )
        .bind(id)
        .bind(received as i64)
        .execute(&self.pool)
        .await
        .map_err(ApiError::from)?;

        tracing::info!(import_id = %id, tenant_id = %tenant, bytes = received, "import queued");
        let task = ImportTask {
            id,
            tenant_id: tenant,
            preset,
            source_label,
            path,
            default_country,
            hasher: self.hasher.clone(),
            custom_fields,
            legal_basis,
            notice,
            writers: self.import_writers,
        };
        // The answer waits for the header: a file refused at it (a wrong
        // preset, a workbook, joined lines) is answered failed with its
        // reason, not queued.
        let (started, header_read) = tokio::sync::oneshot::channel();
        tokio::spawn(job::run(self.pool.clone(), task, started));
        let _ = tokio::time::timeout(HEADER_WAIT, header_read).await;
        Ok(Response::new(imports::get(&self.pool, tenant, id).await?))
    }

    async fn get_import(
        &self,
        request: Request<pb::GetImportRequest>,
    ) -> Result<Response<pb::ImportJob>, Status> {
        let tenant = auth::tenant(&request)?;
        let id = parse_id(&request.get_ref().id, "id")?;
        Ok(Response::new(imports::get(&self.pool, tenant, id).await?))
    }

    async fn list_imports(
        &self,
        request: Request<pb::ListImportsRequest>,
    ) -> Result<Response<pb::ListImportsResponse>, Status> {
        let tenant = auth::tenant(&request)?;
        let request = request.into_inner();
        let before = match request.page_token.as_str() {
            "" => None,
            token => Some(parse_id(token, "page_token")?),
        };
        let limit = page_size(request.page_size)?;
        let imports = imports::list(&self.pool, tenant, before, limit).await?;
        let next_page_token = match imports.last() {
            Some(last) if imports.len() as i64 == limit => last.id.clone(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListImportsResponse {
            imports,
            next_page_token,
        }))
    }

    async fn list_import_issues(
        &self,
        request: Request<pb::ListImportIssuesRequest>,
    ) -> Result<Response<pb::ListImportIssuesResponse>, Status> {
        let tenant = auth::tenant(&request)?;
        let request = request.into_inner();
        let id = parse_id(&request.import_id, "import_id")?;
        let after = match request.page_token.as_str() {
            "" => imports::IssueCursor::default(),
            token => imports::IssueCursor::parse(token).ok_or_else(|| {
                ApiError::invalid("page_token", "not a token from a previous page")
            })?,
        };
        let limit = page_size(request.page_size)?;
        let (issues, next) = imports::issues(&self.pool, tenant, id, after, limit).await?;
        Ok(Response::new(pb::ListImportIssuesResponse {
            issues,
            next_page_token: next.map(|n| n.to_token()).unwrap_or_default(),
        }))
    }

    async fn count_segment(
        &self,
        request: Request<pb::CountSegmentRequest>,
    ) -> Result<Response<pb::CountSegmentResponse>, Status> {
        let tenant = auth::tenant(&request)?;
        let filter = request.into_inner().filter.unwrap_or_default();
        let filter = segments::resolve(&self.pool, tenant, &filter).await?;
        let count = segments::count(&self.pool, tenant, &filter).await?;
        Ok(Response::new(pb::CountSegmentResponse { count }))
    }

    type StreamSegmentStream = MemberStream;

    async fn stream_segment(
        &self,
        request: Request<pb::StreamSegmentRequest>,
    ) -> Result<Response<Self::StreamSegmentStream>, Status> {
        let tenant = auth::tenant(&request)?;
        let filter = request.into_inner().filter.unwrap_or_default();
        let filter = segments::resolve(&self.pool, tenant, &filter).await?;
        Ok(Response::new(Box::pin(stream_members(
            self.pool.clone(),
            tenant,
            filter,
        ))))
    }

    async fn create_saved_segment(
        &self,
        request: Request<pb::CreateSavedSegmentRequest>,
    ) -> Result<Response<pb::SavedSegment>, Status> {
        let tenant = auth::tenant(&request)?;
        let request = request.into_inner();
        let name = request.name.trim();
        if name.is_empty() {
            return Err(ApiError::invalid("name", "give the segment a name").into());
        }
        let filter = request.filter.unwrap_or_default();
        let fields = custom_fields::load(&self.pool, tenant).await?;
        if Filter::parse_with(&filter, &fields)?
            .saved_segment()
            .is_some()
        {
            return Err(ApiError::invalid(
                "filter.saved_segment_id",
                "a saved segment may not name another; copy its conditions instead",
            )
            .into());
        }
        Ok(Response::new(
            segments::create(&self.pool, tenant, name, &filter).await?,
        ))
    }

    async fn list_saved_segments(
        &self,
        request: Request<pb::ListSavedSegmentsRequest>,
    ) -> Result<Response<pb::ListSavedSegmentsResponse>, Status> {
        let tenant = auth::tenant(&request)?;
        let request = request.into_inner();
        let after = match request.page_token.as_str() {
            "" => None,
            token => Some(parse_id(token, "page_token")?),
        };
        let limit = page_size(request.page_size)?;
        let found = segments::list(&self.pool, tenant, after, limit).await?;
        let next_page_token = match found.last() {
            Some(last) if found.len() as i64 == limit => last.id.clone(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListSavedSegmentsResponse {
            segments: found,
            next_page_token,
        }))
    }

    async fn get_saved_segment(
        &self,
        request: Request<pb::GetSavedSegmentRequest>,
    ) -> Result<Response<pb::SavedSegment>, Status> {
        let tenant = auth::tenant(&request)?;
        let id = parse_id(&request.get_ref().id, "id")?;
        let mut saved = segments::get(&self.pool, tenant, id).await?;
        let filter = segments::resolve(
            &self.pool,
            tenant,
            &saved.filter.clone().unwrap_or_default(),
        )
        .await?;
        saved.count = Some(segments::count(&self.pool, tenant, &filter).await?);
        Ok(Response::new(saved))
    }

    async fn delete_saved_segment(
        &self,
        request: Request<pb::DeleteSavedSegmentRequest>,
    ) -> Result<Response<pb::DeleteSavedSegmentResponse>, Status> {
        let tenant = auth::tenant(&request)?;
        let id = parse_id(&request.get_ref().id, "id")?;
        segments::delete(&self.pool, tenant, id).await?;
        Ok(Response::new(pb::DeleteSavedSegmentResponse {}))
    }

    // One record per person (see `crate::merge`).

    #[tracing::instrument(name = "contacts.people.merge", skip_all)]
    async fn merge_people(
        &self,
        request: Request<pb::MergePeopleRequest>,
    ) -> Result<Response<pb::Merge>, Status> {
        let tenant = auth::tenant(&request)?;
        let by = auth::caller(&request)?.subject.clone();
        let request = request.into_inner();
        let survivor = parse_id(&request.survivor_id, "survivor_id")?;
        let merged = parse_id(&request.merged_id, "merged_id")?;
        let reason = match request.reason.trim() {
            "" => "manual",
            reason => reason,
        };
        let done = merge::merge(&self.pool, tenant, survivor, merged, reason, &by).await?;
        Ok(Response::new(pb::Merge {
            id: done.id.to_string(),
            survivor_id: done.survivor.to_string(),
            merged_id: done.merged.to_string(),
            reason: done.reason,
            merged_by: done.merged_by,
            merge_time: Some(muster_runtime::time::to_proto(done.at)),
            survivor: Some(people::get(&self.pool, tenant, survivor).await?),
        }))
    }

    async fn list_duplicates(
        &self,
        request: Request<pb::ListDuplicatesRequest>,
    ) -> Result<Response<pb::ListDuplicatesResponse>, Status> {
        let tenant = auth::tenant(&request)?;
        let request = request.into_inner();
        let after = match request.page_token.as_str() {
            "" => None,
            token => Some(parse_id(token, "page_token")?),
        };
        let state = pb::DuplicateState::try_from(request.state).unwrap_or_default();
        let limit = page_size(request.page_size)?;
        let found = duplicates::list(&self.pool, tenant, state, after, limit).await?;
        let next_page_token = match found.last() {
            Some(last) if found.len() as i64 == limit => last.id.clone(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListDuplicatesResponse {
            duplicates: found,
            next_page_token,
        }))
    }

    async fn dismiss_duplicate(
        &self,
        request: Request<pb::DismissDuplicateRequest>,
    ) -> Result<Response<pb::Duplicate>, Status> {
        let tenant = auth::tenant(&request)?;
        let by = auth::caller(&request)?.subject.clone();
        let id = parse_id(&request.get_ref().id, "id")?;
        Ok(Response::new(
            duplicates::dismiss(&self.pool, tenant, id, &by).await?,
        ))
    }

    async fn find_duplicates(
        &self,
        request: Request<pb::FindDuplicatesRequest>,
    ) -> Result<Response<pb::FindDuplicatesResponse>, Status> {
        let tenant = auth::tenant(&request)?;
        let found = duplicates::detect(&self.pool, tenant, None)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::FindDuplicatesResponse {
            listed: found.listed,
            merged: found.merged,
        }))
    }

    async fn get_duplicate_rules(
        &self,
        request: Request<pb::GetDuplicateRulesRequest>,
    ) -> Result<Response<pb::DuplicateRules>, Status> {
        let tenant = auth::tenant(&request)?;
        let rules = duplicates::rules(&self.pool, tenant)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(duplicates::rules_to_proto(&rules)))
    }

    async fn set_duplicate_rules(
        &self,
        request: Request<pb::DuplicateRules>,
    ) -> Result<Response<pb::DuplicateRules>, Status> {
        let tenant = auth::tenant(&request)?;
        let automatic = request
            .get_ref()
            .automatic
            .iter()
            .map(|&kind| duplicates::Kind::exact_from_proto(kind, "automatic"))
            .collect::<Result<_, _>>()?;
        duplicates::set_rules(&self.pool, tenant, &automatic)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(duplicates::rules_to_proto(&automatic)))
    }

    // ---- Custom fields ----

    async fn define_custom_field(
        &self,
        request: Request<pb::DefineCustomFieldRequest>,
    ) -> Result<Response<pb::CustomField>, Status> {
        let tenant = auth::tenant(&request)?;
        let field = request.into_inner().field.unwrap_or_default();
        let definition = custom_fields::check(&field)?;
        let defined = custom_fields::define(&self.pool, tenant, &definition).await?;
        tracing::info!(tenant_id = %tenant, key = definition.key(), "custom field defined");
        Ok(Response::new(defined))
    }

    async fn update_custom_field(
        &self,
        request: Request<pb::UpdateCustomFieldRequest>,
    ) -> Result<Response<pb::CustomField>, Status> {
        let tenant = auth::tenant(&request)?;
        let change = request.into_inner().field.unwrap_or_default();
        let updated = custom_fields::update(&self.pool, tenant, &change).await?;
        tracing::info!(tenant_id = %tenant, key = updated.key, "custom field updated");
        Ok(Response::new(updated))
    }

    async fn list_custom_fields(
        &self,
        request: Request<pb::ListCustomFieldsRequest>,
    ) -> Result<Response<pb::ListCustomFieldsResponse>, Status> {
        let tenant = auth::tenant(&request)?;
        let fields = custom_fields::list(&self.pool, tenant).await?;
        Ok(Response::new(pb::ListCustomFieldsResponse { fields }))
    }

    async fn delete_custom_field(
        &self,
        request: Request<pb::DeleteCustomFieldRequest>,
    ) -> Result<Response<pb::DeleteCustomFieldResponse>, Status> {
        let tenant = auth::tenant(&request)?;
        custom_fields::delete(&self.pool, tenant, request.get_ref().key.trim()).await?;
        Ok(Response::new(pb::DeleteCustomFieldResponse {}))
    }

    async fn set_custom_fields(
        &self,
        request: Request<pb::SetCustomFieldsRequest>,
    ) -> Result<Response<pb::Person>, Status> {
        let tenant = auth::tenant(&request)?;
        let request = request.into_inner();
        let id = parse_id(&request.person_id, "person_id")?;
        custom_fields::set(&self.pool, tenant, id, &request.values).await?;
        Ok(Response::new(people::get(&self.pool, tenant, id).await?))
    }
}

fn stream_members(
    pool: PgPool,
    tenant: TenantId,
    filter: Filter,
) -> impl Stream<Item = Result<pb::SegmentMemberBatch, Status>> + Send {
    async_stream::try_stream! {
        let mut after = Uuid::nil();
        loop {
            let mut query = QueryBuilder::new(
                "SELECT id, COALESCE(email, ''), COALESCE(first_name, ''), \
                 COALESCE(last_name, ''), COALESCE(city, '') FROM people",
            );
            filter.push_where(&mut query, tenant);
            query.push(" AND id > ").push_bind(after);
            query.push(" ORDER BY id LIMIT ").push_bind(STREAM_BATCH);
            let mut tx = segments::reading(&pool, &filter).await.map_err(ApiError::from)?;
            let rows: Vec<(Uuid, String, String, String, String)> =
                query.build_query_as().persistent(false).fetch_all(&mut *tx).await
                    .map_err(ApiError::from)?;
            tx.commit().await.map_err(ApiError::from)?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            let full = rows.len() as i64 == STREAM_BATCH;
            let members = rows
                .into_iter()
                .map(|(id, email, first_name, last_name, city)| pb::SegmentMember {
                    person_id: id.to_string(),
                    email,
                    first_name,
                    last_name,
                    city,
                })
                .collect();
            yield pb::SegmentMemberBatch { members };
            if !full {
                break;
            }
        }
    }
}

fn preset(header: &pb::ImportHeader) -> Result<Preset, ApiError> {
    let preset = pb::ImportPreset::try_from(header.preset)
        .map_err(|_| ApiError::invalid("header.preset", "unknown preset"))?;
    Ok(match preset {
        pb::ImportPreset::FrExcel => Preset::FrExcel,
        pb::ImportPreset::Nationbuilder => Preset::NationBuilder,
        pb::ImportPreset::MailchimpSubscribed => Preset::MailchimpSubscribed,
        pb::ImportPreset::MailchimpUnsubscribed => Preset::MailchimpUnsubscribed,
        pb::ImportPreset::Custom => {
            Preset::Custom(mapping(header.mapping.clone().unwrap_or_default())?)
        }
        pb::ImportPreset::Unspecified => {
            return Err(ApiError::invalid(
                "header.preset",
                "choose a preset: fr_excel, nationbuilder, mailchimp_subscribed, \
                 mailchimp_unsubscribed, or custom with a column mapping",
            ));
        }
    })
}

/// The organization's country, for national phone numbers; FR when the
/// caller gives none.
fn default_country(raw: &str, field: &str) -> Result<String, ApiError> {
    let country = raw.trim().to_ascii_uppercase();
    if country.is_empty() {
        return Ok("FR".to_owned());
    }
    match country.parse::<phonenumber::country::Id>() {
        Ok(_) if country.len() == 2 => Ok(country),
        _ => Err(ApiError::invalid(
            field,
            format!("{raw:?} is not an ISO 3166-1 two-letter country code"),
        )),
    }
}

/// The legal basis an import header declares; consent when it gives none.
fn import_legal_basis(raw: &str) -> Result<LegalBasis, ApiError> {
    match raw.trim() {
        "" => Ok(LegalBasis::Consent),
        name => LegalBasis::parse(&name.to_ascii_lowercase()).ok_or_else(|| {
            ApiError::invalid(
                "header.legal_basis",
                format!(
                    "{raw:?} is not a legal basis; use consent, contract, legal_obligation, \
                     vital_interests, public_task or legitimate_interests"
                ),
            )
        }),
    }
}

/// The notice an import header names, at most 10,000 characters.
fn import_notice(raw: &str) -> Result<String, ApiError> {
    let notice = raw.trim();
    if notice.chars().count() > 10_000 || notice.contains('\0') {
        return Err(ApiError::invalid(
            "header.notice",
            "give the notice's text (at most 10,000 characters, no NUL) or its version",
        ));
    }
    Ok(notice.to_owned())
}

fn mapping(m: pb::ColumnMapping) -> Result<ColumnMapping, ApiError> {
    let some = |s: String| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let mapping = ColumnMapping {
        first_name: some(m.first_name),
        last_name: some(m.last_name),
        email: some(m.email),
        phone: some(m.phone),
        address_line1: some(m.address_line1),
        postal_code: some(m.postal_code),
        city: some(m.city),
        country: some(m.country),
        birth_date: some(m.birth_date),
        tags: some(m.tags),
        email_consent: some(m.email_consent),
        email_consent_time: some(m.email_consent_time),
        external_id: some(m.external_id),
        custom_fields: custom_mapping(m.custom_fields),
    };
    if mapping.email.is_none() && mapping.phone.is_none() {
        return Err(ApiError::invalid(
            "header.mapping",
            "map at least the e-mail or the phone column",
        ));
    }
    one_field_per_column(&mapping)?;
    Ok(mapping)
}

/// Refuses a column mapped to two fields (`map.first_name=Nom` and
/// `map.last_name=Nom`): one of them would be a copy of the other, and
/// stored as if the file said so. Columns compare as headers do.
fn one_field_per_column(mapping: &ColumnMapping) -> Result<(), ApiError> {
    let standard = [
        ("first_name", &mapping.first_name),
        ("last_name", &mapping.last_name),
        ("email", &mapping.email),
        ("phone", &mapping.phone),
        ("address_line1", &mapping.address_line1),
        ("postal_code", &mapping.postal_code),
        ("city", &mapping.city),
        ("country", &mapping.country),
        ("birth_date", &mapping.birth_date),
        ("tags", &mapping.tags),
        ("email_consent", &mapping.email_consent),
        ("email_consent_time", &mapping.email_consent_time),
        ("external_id", &mapping.external_id),
    ];
    let mapped = standard
        .into_iter()
        .filter_map(|(field, header)| Some((field.to_owned(), header.as_deref()?)))
        .chain(
            mapping
                .custom_fields
                .iter()
                .map(|(key, header)| (format!("custom:{key}"), header.as_str())),
        );
    let mut seen = std::collections::HashMap::new();
    for (field, header) in mapped {
        if let Some(first) = seen.insert(crate::domain::header_key(header), field.clone()) {
            return Err(ApiError::invalid(
                format!("header.mapping.{field}"),
                format!(
                    "the column {header:?} is mapped to {first} already: a column fills one \
                     field; map {field} to another column, or leave it out"
                ),
            ));
        }
    }
    Ok(())
}

/// The custom field columns of a mapping as (key, header), keys given as
/// `custom:<key>` or bare, sorted by key so that errors come in one order.
fn custom_mapping(columns: std::collections::HashMap<String, String>) -> Vec<(String, String)> {
    let mut columns: Vec<(String, String)> = columns
        .into_iter()
        .filter(|(_, header)| !header.trim().is_empty())
        .map(|(key, header)| {
            let key = key.trim();
            let key = key.strip_prefix("custom:").unwrap_or(key).to_lowercase();
            (key, header.trim().to_owned())
        })
        .collect();
    columns.sort();
    columns
}

async fn spool(
    stream: &mut Streaming<pb::UploadImportRequest>,
    path: &PathBuf,
) -> Result<u64, ApiError> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("creating {}: {e}", path.display())))?;
    let mut size = 0u64;
    while let Some(message) = stream.message().await.map_err(|status| {
        ApiError::invalid(
            "chunk",
            format!("the upload was interrupted: {}", status.message()),
        )
    })? {
        match message.part {
            Some(Part::Chunk(bytes)) => {
                size += bytes.len() as u64;
                file.write_all(&bytes)
                    .await
                    .map_err(|e| ApiError::Internal(e.into()))?;
            }
            _ => {
                return Err(ApiError::invalid(
                    "header",
                    "only the first message is a header",
                ));
            }
        }
    }
    file.flush()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(size)
}

async fn fail(pool: &PgPool, id: Uuid, error: &str) {
    let _ = sqlx::query(
        "UPDATE imports SET state = 'failed', error = $2, finished_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .execute(pool)
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_mapped_to_two_fields_is_refused_naming_both() {
        let both = pb::ColumnMapping {
            email: "Courriel".into(),
            first_name: "Nom".into(),
            last_name: " nom ".into(),
            ..Default::default()
        };

        let error = mapping(both).unwrap_err().to_string();

        assert!(error.starts_with("header.mapping.last_name: "), "{error}");
        assert!(error.contains("mapped to first_name already"), "{error}");
    }

    #[test]
    fn a_custom_field_cannot_share_a_mapped_column_either() {
        let both = pb::ColumnMapping {
            email: "Courriel".into(),
            custom_fields: [("custom:adresse".to_owned(), "courriel".to_owned())].into(),
            ..Default::default()
        };

        let error = mapping(both).unwrap_err().to_string();

        assert!(error.contains("custom:adresse"), "{error}");
        let distinct = pb::ColumnMapping {
            email: "Courriel".into(),
            phone: "Portable".into(),
            ..Default::default()
        };
        assert!(mapping(distinct).is_ok());
    }
}
