//! `/v1/imports`: supporter files streamed to contacts, and their progress.

use axum::body::Body;
use axum::extract::{Path, Request};
use axum::http::header::{CONTENT_LENGTH, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::{Json, RequestExt};
use futures::StreamExt;
use muster_proto::contacts::v1::upload_import_request::Part;
use muster_proto::contacts::v1::{
    ColumnMapping, GetImportRequest, ImportHeader, ListImportIssuesRequest, ListImportsRequest,
    UploadImportRequest,
};
use tokio::sync::oneshot;

use super::PageParams;
use super::models::{ImportIssue, ImportJob, ImportPreset, Imports, Issues, Page};
use crate::error::HttpError;
use crate::extract::QueryParams;
use crate::upstream::{Reply, TenantApi, Upstream};

/// `POST /v1/imports?preset=..`: streams the body, chunk by chunk, to contacts.
#[tracing::instrument(
    name = "gateway.imports.upload",
    skip_all,
    fields(tenant_id = %api.tenant, size_bytes, import_id)
)]
pub async fn upload(
    mut api: TenantApi,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
    request: Request,
) -> Result<(StatusCode, HeaderMap, Json<ImportJob>), HttpError> {
    let mut header = import_header(params)?;
    header.default_country = api.default_country.clone();
    refuse_a_form(request.headers())?;
    header.size_bytes = content_length(request.headers())?;
    tracing::Span::current().record("size_bytes", header.size_bytes);

    let (interrupted, upload_failed) = oneshot::channel();
    let messages = upload_messages(header, request.into_limited_body(), interrupted);
    let job = tokio::select! {
        reply = api.contacts.upload_import(messages) => reply.reply(Upstream::Contacts)?,
        Ok(error) = upload_failed => {
            tracing::info!(%error, "upload interrupted; import abandoned");
            return Err(HttpError::invalid("body", format!("the upload was interrupted: {error}")));
        }
    };
    tracing::Span::current().record("import_id", job.id.as_str());

    let mut headers = HeaderMap::new();
    if let Ok(location) = format!("/v1/imports/{}", job.id).parse() {
        headers.insert(LOCATION, location);
    }
    Ok((StatusCode::CREATED, headers, Json(job.into())))
}

/// The header message, then one message per chunk of `body`. When the body
/// fails (the client went away, the size limit was hit) the error goes to
/// `interrupted` and the stream never ends: ending it would tell contacts the
/// file is complete, whereas dropping the call resets the stream. A tonic
/// server reads that reset (CANCEL) as a normal end too, so contacts must also
/// compare the bytes it received with `size_bytes`, which is why it is required.
fn upload_messages(
    header: ImportHeader,
    body: Body,
    interrupted: oneshot::Sender<axum::Error>,
) -> impl futures::Stream<Item = UploadImportRequest> + Send + 'static {
    let mut chunks = body.into_data_stream();
    async_stream::stream! {
        yield UploadImportRequest { part: Some(Part::Header(header)) };
        while let Some(chunk) = chunks.next().await {
            match chunk {
                Ok(bytes) if bytes.is_empty() => {}
                Ok(bytes) => yield UploadImportRequest { part: Some(Part::Chunk(bytes.to_vec())) },
                Err(error) => {
                    let _ = interrupted.send(error);
                    match futures::future::pending::<std::convert::Infallible>().await {}
                }
            }
        }
    }
}

/// The import header the query string describes: `preset`, `file_name`,
/// `source_label`, `legal_basis` (contacts checks it; default consent),
/// `notice` and, for `preset=custom`, `map.<field>=<column header>`.
fn import_header(params: Vec<(String, String)>) -> Result<ImportHeader, HttpError> {
    let mut header = ImportHeader {
        file_name: "upload".into(),
        ..Default::default()
    };
    let mut preset = None;
    let mut mapping = ColumnMapping::default();
    let mut mapped = false;
    let mut given = std::collections::HashMap::new();

    for (name, value) in params {
        // A second value would silently replace the first (`--map email=A --map email=B`).
        if let Some(first) = given.insert(name.clone(), value.clone()) {
            return Err(HttpError::invalid(
                &name,
                format!("given twice ({first:?}, then {value:?}); give it once"),
            ));
        }
        match name.as_str() {
            "preset" => {
                preset = Some(ImportPreset::parse(&value).ok_or_else(|| {
                    HttpError::invalid("preset", format!("unknown preset {value:?}; {PRESETS}"))
                })?)
            }
            "file_name" => header.file_name = value,
            "source_label" => header.source_label = value,
            "legal_basis" => header.legal_basis = value,
            "notice" => header.notice = value,
            _ => match name.strip_prefix("map.") {
                // A custom field: map.custom:<key>=<column header>.
                Some(field) if field.starts_with("custom:") => {
                    mapping.custom_fields.insert(field.to_owned(), value);
                    mapped = true;
                }
                Some(field) => {
                    *mapping_field(&mut mapping, field).ok_or_else(|| {
                        HttpError::invalid(&name, format!("unknown field; {MAPPED_FIELDS}"))
                    })? = value;
                    mapped = true;
                }
                None => return Err(HttpError::invalid(&name, "unknown query parameter")),
            },
        }
    }

    let preset =
        preset.ok_or_else(|| HttpError::invalid("preset", format!("missing; {PRESETS}")))?;
    if mapped && preset != ImportPreset::Custom {
        return Err(HttpError::invalid(
            "preset",
            "map.* parameters need preset=custom",
        ));
    }
    header.preset = preset.to_proto().into();
    header.mapping = mapped.then_some(mapping);
    Ok(header)
}

const PRESETS: &str =
    "one of fr_excel, nationbuilder, mailchimp_subscribed, mailchimp_unsubscribed, custom";
const MAPPED_FIELDS: &str = "map.<field> takes first_name, last_name, email, phone, \
    address_line1, postal_code, city, country, birth_date, tags, email_consent, \
    email_consent_time, external_id or custom:<custom field key>";

fn mapping_field<'m>(mapping: &'m mut ColumnMapping, field: &str) -> Option<&'m mut String> {
    let slot = match field {
        "first_name" => &mut mapping.first_name,
        "last_name" => &mut mapping.last_name,
        "email" => &mut mapping.email,
        "phone" => &mut mapping.phone,
        "address_line1" => &mut mapping.address_line1,
        "postal_code" => &mut mapping.postal_code,
        "city" => &mut mapping.city,
        "country" => &mut mapping.country,
        "birth_date" => &mut mapping.birth_date,
        "tags" => &mut mapping.tags,
        "email_consent" => &mut mapping.email_consent,
        "email_consent_time" => &mut mapping.email_consent_time,
        "external_id" => &mut mapping.external_id,
        _ => return None,
    };
    Some(slot)
}

/// Refuses a file sent as a form (`curl -F file=@…`): the form's boundary
/// lines would be read as the file's header.
fn refuse_a_form(headers: &HeaderMap) -> Result<(), HttpError> {
    let form = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|kind| kind.to_ascii_lowercase().starts_with("multipart/"));
    match form {
        true => Err(HttpError::invalid(
            "body",
            "a multipart form: send the file itself as the body (curl --data-binary @FILE)",
        )),
        false => Ok(()),
    }
}

/// The declared body length. It is required: it is how contacts tells a
/// complete file from one cut short.
fn content_length(headers: &HeaderMap) -> Result<u64, HttpError> {
    let length = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok())
        .ok_or_else(|| {
            HttpError::invalid(
                "Content-Length",
                "required: send the file with its length, not chunked",
            )
        })?;
    if length > super::MAX_UPLOAD_BYTES as u64 {
        let limit = super::MAX_UPLOAD_BYTES >> 20;
        return Err(HttpError::invalid(
            "body",
            format!("files over {limit} MiB are refused"),
        ));
    }
    Ok(length)
}

/// `GET /v1/imports/{id}`: the import and its progress.
#[tracing::instrument(
    name = "gateway.imports.get",
    skip_all,
    fields(tenant_id = %api.tenant, import_id = %id)
)]
pub async fn get(mut api: TenantApi, Path(id): Path<String>) -> Result<Json<ImportJob>, HttpError> {
    let job = api
        .contacts
        .get_import(GetImportRequest { id })
        .await
        .reply(Upstream::Contacts)?;
    Ok(Json(job.into()))
}

/// `GET /v1/imports`: the organization's imports, newest first, a page at a time.
#[tracing::instrument(name = "gateway.imports.list", skip_all, fields(tenant_id = %api.tenant))]
pub async fn list(
    mut api: TenantApi,
    QueryParams(page): QueryParams<PageParams>,
) -> Result<Json<Page<Imports>>, HttpError> {
    let request = ListImportsRequest {
        page_size: page.page_size,
        page_token: page.page_token,
    };
    let reply = api
        .contacts
        .list_imports(request)
        .await
        .reply(Upstream::Contacts)?;
    let imports = reply.imports.into_iter().map(ImportJob::from).collect();
    Ok(Json(Page::new(Imports { imports }, reply.next_page_token)))
}

/// `GET /v1/imports/{id}/issues`: one page of the import's issues, by line.
#[tracing::instrument(
    name = "gateway.imports.issues",
    skip_all,
    fields(tenant_id = %api.tenant, import_id = %id)
)]
pub async fn issues(
    mut api: TenantApi,
    Path(id): Path<String>,
    QueryParams(page): QueryParams<PageParams>,
) -> Result<Json<Page<Issues>>, HttpError> {
    let request = ListImportIssuesRequest {
        import_id: id,
        page_size: page.page_size,
        page_token: page.page_token,
    };
    let reply = api
        .contacts
        .list_import_issues(request)
        .await
        .reply(Upstream::Contacts)?;

    let issues = reply.issues.into_iter().map(ImportIssue::from).collect();
    Ok(Json(Page::new(Issues { issues }, reply.next_page_token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_custom_import_maps_columns_from_the_query() {
        let header = import_header(params(&[
            ("preset", "custom"),
            ("file_name", "adherents.csv"),
            ("map.email", "E-mail"),
            ("map.first_name", "Prénom"),
        ]))
        .unwrap();

        assert_eq!(
            header.preset,
            muster_proto::contacts::v1::ImportPreset::Custom as i32
        );
        assert_eq!(header.file_name, "adherents.csv");
        let mapping = header.mapping.unwrap();
        assert_eq!(mapping.email, "E-mail");
        assert_eq!(mapping.first_name, "Prénom");
    }

    #[test]
    fn an_import_without_a_preset_is_refused() {
        let error = import_header(params(&[("file_name", "a.csv")])).unwrap_err();
        assert!(error.to_string().contains("preset"), "{error}");
    }

    #[test]
    fn a_mapping_needs_the_custom_preset() {
        let error =
            import_header(params(&[("preset", "fr_excel"), ("map.email", "Mail")])).unwrap_err();
        assert!(error.to_string().contains("preset=custom"), "{error}");
    }

    #[test]
    fn a_misspelt_mapping_field_is_refused() {
        let error =
            import_header(params(&[("preset", "custom"), ("map.emial", "Mail")])).unwrap_err();
        assert!(error.to_string().contains("map.emial"), "{error}");
    }

    #[test]
    fn a_file_sent_as_a_form_is_refused_with_how_to_send_it() {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            "multipart/form-data; boundary=----x".parse().unwrap(),
        );

        let error = refuse_a_form(&headers).unwrap_err();

        assert!(error.to_string().contains("--data-binary"), "{error}");
        assert!(refuse_a_form(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn a_parameter_given_twice_is_refused_rather_than_the_last_winning() {
        let error = import_header(params(&[
            ("preset", "custom"),
            ("map.email", "E-mail"),
            ("map.email", "Courriel"),
        ]))
        .unwrap_err();

        let message = error.to_string();
        assert!(message.contains("map.email"), "{message}");
        assert!(
            message.contains("given twice (\"E-mail\", then \"Courriel\")"),
            "{message}"
        );
    }

    #[test]
    fn an_oversized_declared_length_is_refused_before_reading() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, (2u64 << 30).to_string().parse().unwrap());
        assert!(content_length(&headers).is_err());

        headers.insert(CONTENT_LENGTH, "200000000".parse().unwrap());
        assert_eq!(content_length(&headers).unwrap(), 200_000_000);
    }

    #[test]
    fn an_upload_without_a_declared_length_is_refused() {
        let error = content_length(&HeaderMap::new()).unwrap_err();
        assert!(error.to_string().contains("Content-Length"), "{error}");
    }
}
