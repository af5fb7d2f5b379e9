//! An import as a job: the uploaded file is spooled to disk, read on a
//! blocking thread by [`ImportReader`], and written in batches — one
//! set-based upsert per batch, consent applied by the rules of the ledger,
//! progress and issues recorded as it goes.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use muster_runtime::TenantId;
use muster_runtime::privacy::AddressHasher;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::shared_phone;
use super::{
    ConsentStatement, ImportReader, ImportRow, Preset, RowIssue, RowOutcome, ShadowedField,
    UnreadColumn,
};
use crate::consent::{self, Channel, Kind, LegalBasis, State};
use crate::domain::custom_field::Definitions;
use crate::domain::territory::{self, Place, departement_of};
use crate::events;
use crate::merge;
use crate::privacy;

/// Rows written per transaction.
pub const BATCH_ROWS: usize = 2_000;

/// The most transactions one import writes at once.
pub const MAX_WRITERS: usize = 8;

/// Attempts at a batch that lost a deadlock to another writer.
const ATTEMPTS: usize = 3;

/// What the worker needs to run one uploaded import.
#[derive(Clone)]
pub struct ImportTask {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub preset: Preset,
    pub source_label: String,
    pub path: PathBuf,
    /// ISO 3166-1 alpha-2, for rows without a country and national phone numbers.
    pub default_country: String,
    /// Finds rows whose address was erased.
    pub hasher: AddressHasher,
    /// The organization's custom fields, read from matching columns.
    pub custom_fields: Definitions,
    /// The legal basis the uploader declared for the consent the file states.
    pub legal_basis: LegalBasis,
    /// The text or version of the notice the file's people were shown.
    pub notice: String,
    /// Transactions written at once, each over its own share of the people
    /// (1 to [`MAX_WRITERS`]).
    pub writers: usize,
}

/// What every consent statement of one import carries.
struct ConsentTerms {
    source: String,
    legal_basis: LegalBasis,
    notice: String,
    /// False when the organization's policy forbids the basis on e-mail:
    /// the file's grants are not applied (its withdrawals still are).
    grants: bool,
}

impl ConsentTerms {
    /// What the file says of a candidate's general e-mail consent, row by
    /// row in the file's order, as the ledger takes it: a withdrawal always;
    /// a grant unless the policy forbids the import's basis on e-mail.
    fn statements<'c>(
        &self,
        candidate: &'c Candidate,
    ) -> impl Iterator<Item = (Kind, DateTime<Utc>, serde_json::Value)> + 'c {
        let grants = self.grants;
        candidate
            .consent
            .iter()
            .filter_map(move |&(is_grant, time, proof, _)| {
                let kind = match is_grant {
                    true if !grants => return None,
                    true => Kind::ImportGrant,
                    false => Kind::Withdraw,
                };
                let evidence: serde_json::Map<String, serde_json::Value> = proof
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone().into()))
                    .collect();
                Some((kind, time, evidence.into()))
            })
    }

    /// The general e-mail consent a candidate new to the organization ends
    /// with: its statements applied in order from no state at all, by the
    /// ledger's own rules; the last one that changed the state.
    fn first_state(
        &self,
        candidate: &Candidate,
    ) -> Option<(State, DateTime<Utc>, serde_json::Value)> {
        let mut state = None;
        for (kind, time, evidence) in self.statements(candidate) {
            if let Some(next) = consent::next(state.as_ref().map(|s: &(State, _, _)| s.0), kind) {
                state = Some((next, time, evidence));
            }
        }
        state
    }
}

/// Rows read from the file, waiting to be written.
struct Batch {
    rows: Vec<ImportRow>,
    empty: u64,
    rejected: Vec<(u64, Vec<RowIssue>)>,
    bytes_read: u64,
    /// The person each row without e-mail is, by line (see `shared_phone`).
    holders: HashMap<u64, Uuid>,
}

/// Counters added by one batch.
#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    rows_read: i64,
    rows_empty: i64,
    created: i64,
    merged: i64,
    rejected: i64,
    warnings: i64,
    consent_granted: i64,
    suppressed: i64,
}

/// Runs the import to its end, recording success or the reason of failure.
#[tracing::instrument(name = "contacts.import.run", skip_all, fields(import_id = %task.id))]
/// Runs the import; `started` is told once its header is read and recorded,
/// or once it failed.
pub async fn run(pool: PgPool, task: ImportTask, started: oneshot::Sender<()>) {
    let mut started = Some(started);
    let outcome = execute(&pool, &task, &mut started).await;
    let _ = tokio::fs::remove_file(&task.path).await;
    let (state, error) = match &outcome {
        Ok(()) => ("succeeded", None),
        Err(error) => {
            // The reason can quote the file (a header line that was a
            // person's row): it is kept on the import, not in the log.
            tracing::warn!(
                cause = failure_kind(error),
                "import failed; its reason is on the import (GetImport)"
            );
            ("failed", Some(storable(&format!("{error:#}"))))
        }
    };
    let finished =
        sqlx::query("UPDATE imports SET state = $2, error = $3, finished_at = now() WHERE id = $1")
            .bind(task.id)
            .bind(state)
            .bind(error)
            .execute(&pool)
            .await;
    if let Err(error) = finished {
        tracing::error!(%error, "could not record the end of an import");
    }
    if let Some(started) = started {
        let _ = started.send(());
    }
}

async fn execute(
    pool: &PgPool,
    task: &ImportTask,
    started: &mut Option<oneshot::Sender<()>>,
) -> anyhow::Result<()> {
    let (header_tx, header_rx) = oneshot::channel();
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..task.writers.clamp(1, MAX_WRITERS))
        .map(|_| mpsc::channel::<Batch>(2))
        .unzip();
    let spec = task.clone();
    let reader = tokio::task::spawn_blocking(move || read_file(spec, header_tx, senders));

    let mut header_line = 1;
    if let Ok(opened) = header_rx.await {
        header_line = opened.header_line;
        sqlx::query(
            "UPDATE imports SET state = 'running', encoding = $2, delimiter = $3 WHERE id = $1",
        )
        .bind(task.id)
        .bind(&opened.encoding)
        .bind(&opened.delimiter)
        .execute(pool)
        .await?;
        if !opened.titles.is_empty() {
            note_titles(pool, task, &opened).await?;
        }
        if !opened.unread.is_empty() {
            note_unread_columns(pool, task, header_line, &opened.unread).await?;
        }
        for field in &opened.shadowed {
            note_shadowed_field(pool, task, header_line, field).await?;
        }
        if let Some(started) = started.take() {
            let _ = started.send(());
        }
    }

    let terms = consent_terms(pool, task).await?;
    // Whether the organization has people without e-mail before this import
    // writes any: only they may gain a row's address (see `shared_phone`).
    let known_without_email: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM people WHERE tenant_id = $1 AND email_key IS NULL)",
    )
    .bind(task.tenant_id)
    .fetch_one(pool)
    .await
    .context("reading whether people without e-mail are known")?;
    let writers = receivers
        .into_iter()
        .map(|batches| write_all(pool, task, &terms, known_without_email, batches));
    let mut phases = Phases::default();
    for written in futures::future::try_join_all(writers).await? {
        phases.add(&written);
    }
    let mut clock = std::time::Instant::now();
    let read = reader.await.context("the file reader panicked")??;
    note_unnamed_columns(pool, task, header_line, &read.unnamed).await?;
    if read.without_commune > 0 {
        note_without_commune(pool, task, read.without_commune).await?;
    }
    if read.lines == 0 {
        let reason = "the file has no line below its header, so nobody was imported: check that \
                      the export held its rows (a filter or a selection may have left it empty)";
        header_warning(pool, task, header_line, "", reason).await?;
    }
    // Fresh statistics before anything plans a query over what was written:
    // without them, an organization's first import leaves the planner
    // thinking its tables empty, and a segment that reads consents under a
    // policy became a nested loop over every pair of people (minutes, not
    // milliseconds). Autovacuum would analyze later, not at once.
    for table in ["people", "consents"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
            .execute(pool)
            .await
            .with_context(|| format!("analyzing {table}"))?;
    }
    phases.lap(&mut clock, Phase::Analyzing);
    merge::duplicates::after_import(pool, task.tenant_id, task.id).await;
    phases.lap(&mut clock, Phase::Detecting);
    tracing::info!(import_id = %task.id, busy_ms = ?phases, "import written");
    Ok(())
}

/// One writer: its batches in order, each in a transaction of its own.
async fn write_all(
    pool: &PgPool,
    task: &ImportTask,
    terms: &ConsentTerms,
    known_without_email: bool,
    mut batches: mpsc::Receiver<Batch>,
) -> anyhow::Result<Phases> {
    let mut phases = Phases::default();
    let mut clock = std::time::Instant::now();
    while let Some(mut batch) = batches.recv().await {
        phases.lap(&mut clock, Phase::Reading);
        for attempt in 1.. {
            let written = write_one(
                pool,
                task,
                terms,
                known_without_email,
                &mut batch,
                &mut phases,
                &mut clock,
            );
            match written.await {
                Ok(()) => break,
                // Two writers reached the same person (a row matched by a
                // secondary address): the batch rolled back whole, so it
                // runs again as it was.
                Err(error) if attempt < ATTEMPTS && lost_a_deadlock(&error) => {
                    tracing::info!(import_id = %task.id, attempt,
                        "an import batch met another writer's; writing it again");
                }
                Err(error) => return Err(error),
            }
        }
    }
    Ok(phases)
}

async fn write_one(
    pool: &PgPool,
    task: &ImportTask,
    terms: &ConsentTerms,
    known_without_email: bool,
    batch: &mut Batch,
    phases: &mut Phases,
    clock: &mut std::time::Instant,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    // A batch lost in a crash is lost with its progress, and the import is
    // then marked failed and imported again: nothing needs each commit to
    // wait for its flush to disk.
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    set_aside_erased(&mut tx, task, batch).await?;
    merge::addresses::match_secondaries(&mut tx, task.tenant_id, &mut batch.rows).await?;
    batch.holders = shared_phone::assign_holders(
        &mut tx,
        task.tenant_id,
        task.id,
        known_without_email,
        &mut batch.rows,
        &mut batch.rejected,
    )
    .await?;
    phases.lap(clock, Phase::Matching);
    let (counts, refused) = write_batch(&mut tx, task, terms, batch, phases, clock).await?;
    record_progress(&mut tx, task.id, batch.bytes_read, counts).await?;
    record_issues(&mut tx, task.id, batch, &refused).await?;
    tx.commit().await?;
    phases.lap(clock, Phase::Committing);
    Ok(())
}

fn lost_a_deadlock(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<sqlx::Error>())
        .filter_map(|e| e.as_database_error()?.code())
        .any(|code| code == "40P01")
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Reading,
    Matching,
    People,
    Consent,
    Committing,
    Analyzing,
    Detecting,
}

/// Where an import's time went, in milliseconds per phase, summed over its
/// writers (reading: waiting for the file's next rows).
#[derive(Default)]
struct Phases([u128; 7]);

impl std::fmt::Debug for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const NAMES: [&str; 7] = [
            "reading",
            "matching",
            "people",
            "consent",
            "committing",
            "analyzing",
            "detecting",
        ];
        let mut map = f.debug_map();
        for (name, ms) in NAMES.iter().zip(self.0) {
            map.entry(name, &ms);
        }
        map.finish()
    }
}

impl Phases {
    fn add(&mut self, other: &Phases) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine += theirs;
        }
    }

    fn lap(&mut self, clock: &mut std::time::Instant, phase: Phase) {
        self.0[phase as usize] += clock.elapsed().as_millis();
        *clock = std::time::Instant::now();
    }
}

/// What the reader found in the file's header.
struct Opened {
    encoding: String,
    delimiter: String,
    /// The columns with a header that no field is read from.
    unread: Vec<UnreadColumn>,
    /// The custom fields a header names that are not filled from its column.
    shadowed: Vec<ShadowedField>,
    /// The header's line number.
    header_line: u64,
    /// The lines of one cell above it, skipped as titles.
    titles: Vec<String>,
}

/// A warning of the header line naming the lines above it that were read as
/// titles, so that a row mistaken for one is not dropped in silence.
async fn note_titles(pool: &PgPool, task: &ImportTask, opened: &Opened) -> anyhow::Result<()> {
    let shown: Vec<String> = opened
        .titles
        .iter()
        .map(|title| format!("{:?}", super::row::shown(title)))
        .collect();
    let reason = format!(
        "the header is line {}; the line(s) above it hold one cell each and were skipped as a \
         title: {}",
        opened.header_line,
        shown.join(", ")
    );
    let value = super::row::shown(&opened.titles.join(" "));
    header_warning(pool, task, opened.header_line, &value, &reason).await
}

/// The most column names one issue lists.
const UNREAD_SHOWN: usize = 20;

/// Warnings of the header line naming the columns that were not imported,
/// so that a column the user expected (a custom field not yet defined, a
/// misspelt or repeated header) is not dropped in silence.
async fn note_unread_columns(
    pool: &PgPool,
    task: &ImportTask,
    line: u64,
    unread: &[UnreadColumn],
) -> anyhow::Result<()> {
    let (repeated, unknown): (Vec<&UnreadColumn>, Vec<&UnreadColumn>) =
        unread.iter().partition(|c| c.repeats.is_some());
    let named = |columns: &[&UnreadColumn]| {
        let mut listed = columns
            .iter()
            .take(UNREAD_SHOWN)
            .map(|c| match c.repeats {
                Some(first) => format!(
                    "{:?} (column {}, the header of column {first} again)",
                    super::row::shown(&c.header),
                    c.column
                ),
                None => format!("{:?}", super::row::shown(&c.header)),
            })
            .collect::<Vec<_>>()
            .join(", ");
        if columns.len() > UNREAD_SHOWN {
            listed.push_str(&format!(" and {} more", columns.len() - UNREAD_SHOWN));
        }
        let headers: Vec<&str> = columns.iter().map(|c| c.header.as_str()).collect();
        (listed, super::row::shown(&headers.join(", ")))
    };
    let mut warnings = Vec::new();
    if !unknown.is_empty() {
        let (listed, value) = named(&unknown);
        let reason = format!(
            "{} column(s) not imported: {listed}; to keep one, define a custom field whose key \
             or label is its header, or map it (preset custom, map.custom:KEY=header)",
            unknown.len()
        );
        warnings.push((value, reason));
    }
    if !repeated.is_empty() {
        let (listed, value) = named(&repeated);
        let reason = format!(
            "{} column(s) repeat an earlier header and are not imported: {listed}; only the \
             first column of a header is read: rename the others (a custom field's key or \
             label) or merge them into it, and import again",
            repeated.len()
        );
        warnings.push((value, reason));
    }
    for (value, reason) in warnings {
        header_warning(pool, task, line, &value, &reason).await?;
    }
    Ok(())
}

/// A warning of the header line that a custom field stays empty: its key or
/// label heads a column the preset reads as a person's own field.
async fn note_shadowed_field(
    pool: &PgPool,
    task: &ImportTask,
    line: u64,
    field: &ShadowedField,
) -> anyhow::Result<()> {
    let reason = format!(
        "the custom field {:?} is not filled from column {} ({:?}): this format reads that \
         column as the person's own field; to fill the custom field too, give it another \
         label and name a column after it, or map both (preset custom, map.custom:{}=header)",
        field.key,
        field.column,
        super::row::shown(&field.header),
        field.key
    );
    header_warning(pool, task, line, &super::row::shown(&field.header), &reason).await
}

/// One warning of the file's header line, on `line`.
async fn header_warning(
    pool: &PgPool,
    task: &ImportTask,
    line: u64,
    value: &str,
    reason: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO import_issues (import_id, line, field, value, reason, severity)
         VALUES ($1, $2, 'header', $3, $4, 'warning')",
    )
    .bind(task.id)
    .bind(line as i64)
    .bind(value)
    .bind(reason)
    .execute(pool)
    .await
    .context("recording a warning of the header line")?;
    Ok(())
}

/// A warning per column without a header that held values, once the file is read.
async fn note_unnamed_columns(
    pool: &PgPool,
    task: &ImportTask,
    line: u64,
    unnamed: &[(usize, u64)],
) -> anyhow::Result<()> {
    for (column, rows) in unnamed {
        let reason = format!(
            "column {column} has no header and held a value in {rows} row(s): not imported; \
             give it a header (a custom field's key or label) and import again"
        );
        header_warning(pool, task, line, "", &reason).await?;
    }
    Ok(())
}

/// The terms of the import's statements. When the policy forbids its basis
/// on e-mail, one issue of the whole file (line 0) says so and how to fix it.
async fn consent_terms(pool: &PgPool, task: &ImportTask) -> anyhow::Result<ConsentTerms> {
    let mut conn = pool.acquire().await?;
    let forbidding = consent::store::forbidding(&mut conn, task.tenant_id, task.legal_basis)
        .await
        .context("reading the consent policy")?;
    let grants = !forbidding.contains(&Channel::Email);
    if !grants {
        sqlx::query(
            "INSERT INTO import_issues (import_id, line, field, value, reason, severity)
             VALUES ($1, 0, 'legal_basis', $2, $3, 'warning')",
        )
        .bind(task.id)
        .bind(task.legal_basis.as_str())
        .bind(format!(
            "the organization's consent policy forbids the legal basis {} on email, so this \
             import granted no e-mail consent (withdrawals were applied); import the file \
             again with the basis its people gave, or change the policy",
            task.legal_basis
        ))
        .execute(&mut *conn)
        .await?;
        tracing::warn!(tenant_id = %task.tenant_id, legal_basis = %task.legal_basis,
            "import grants no e-mail consent: its basis is forbidden on email");
    }
    Ok(ConsentTerms {
        source: format!("import:{}", task.id),
        legal_basis: task.legal_basis,
        notice: task.notice.clone(),
        grants,
    })
}

fn read_file(
    task: ImportTask,
    header: tokio::sync::oneshot::Sender<Opened>,
    writers: Vec<mpsc::Sender<Batch>>,
) -> anyhow::Result<Read> {
    let file = std::fs::File::open(&task.path).context("opening the spooled upload")?;
    let source = std::io::BufReader::with_capacity(1 << 16, file);
    let mut reader = ImportReader::open(source, task.preset, &task.source_label)?
        .with_default_country(&task.default_country)
        .with_custom_fields(&task.custom_fields)?;
    let delimiter = match reader.delimiter() {
        b'\t' => "TAB".to_owned(),
        other => (other as char).to_string(),
    };
    let _ = header.send(Opened {
        encoding: reader.encoding().to_owned(),
        delimiter,
        unread: reader.unread_columns(),
        shadowed: reader.shadowed_fields(),
        header_line: reader.header_line(),
        titles: reader.titles().to_vec(),
    });

    let mut batches: Vec<Batch> = writers.iter().map(|_| new_batch()).collect();
    let mut without_commune = 0;
    let mut lines = 0;
    while let Some(outcome) = reader.next_row() {
        lines += 1;
        if let RowOutcome::Row(row) = &outcome {
            without_commune += u64::from(row.place.is_some_and(|p| p.commune.is_none()));
        }
        let share = match &outcome {
            RowOutcome::Row(row) => writer_of(row, writers.len()),
            _ => 0,
        };
        let batch = &mut batches[share];
        match outcome {
            RowOutcome::Empty { .. } => batch.empty += 1,
            RowOutcome::Rejected { line, issues } => batch.rejected.push((line, issues)),
            RowOutcome::Row(row) => batch.rows.push(row),
        }
        if batch.rows.len() + batch.rejected.len() >= BATCH_ROWS {
            batch.bytes_read = reader.bytes_read();
            if writers[share]
                .blocking_send(std::mem::replace(batch, new_batch()))
                .is_err()
            {
                anyhow::bail!("the import writer stopped");
            }
        }
    }
    for (mut batch, writer) in batches.into_iter().zip(&writers) {
        batch.bytes_read = reader.bytes_read();
        let _ = writer.blocking_send(batch);
    }
    match reader.take_error() {
        Some(error) => Err(error.into()),
        None => Ok(Read {
            unnamed: reader.unnamed_values(),
            without_commune,
            lines,
        }),
    }
}

/// What the reader tells once the whole file is read.
struct Read {
    /// Columns without a header that held values, with how many rows did.
    unnamed: Vec<(usize, u64)>,
    /// Rows placed in a département only: a postal code several communes
    /// share, and no town.
    without_commune: u64,
    /// The lines below the header, empty ones included.
    lines: u64,
}

/// One warning of the whole file (line 0) counting the rows placed in a
/// département only, and how to place them in their commune.
async fn note_without_commune(pool: &PgPool, task: &ImportTask, rows: u64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO import_issues (import_id, line, field, value, reason, severity)
         VALUES ($1, 0, 'city', '', $2, 'warning')",
    )
    .bind(task.id)
    .bind(format!(
        "{rows} row(s) have a postal code that several communes share and no town: they are \
         placed in their département and région, not in a commune (segments by commune leave \
         them out; the segment NOT has:commune finds them); add the town (a Ville or city \
         column) and import the file again to place them"
    ))
    .execute(pool)
    .await
    .context("recording the rows without a commune")?;
    Ok(())
}

/// The writer of a row: the same for every row of one person (by address,
/// else by phone number), so that they are applied in the file's order.
pub(super) fn writer_of(row: &ImportRow, writers: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    match (&row.email, &row.phone) {
        (Some(email), _) => email.key().hash(&mut hasher),
        (None, Some(phone)) => phone.as_str().hash(&mut hasher),
        (None, None) => return 0,
    }
    (hasher.finish() % writers as u64) as usize
}

fn new_batch() -> Batch {
    Batch {
        rows: Vec::with_capacity(BATCH_ROWS),
        empty: 0,
        rejected: Vec::new(),
        bytes_read: 0,
        holders: HashMap::new(),
    }
}

/// Why a row whose address was erased is refused.
const ERASED_REASON: &str =
    "this address was erased at the person's request and is not imported again";

/// Why a row whose phone number was erased is refused.
const ERASED_PHONE_REASON: &str = "this phone number was erased at the person's request and is \
     not imported again; remove the row, or the phone cell if it is someone else's number";

/// Moves the rows whose address or phone number was erased to the rejected
/// ones, so that an import never creates nor subscribes an erased person
/// again. The issue recorded names the line, never the value.
///
/// An erased phone refuses the row even when the row has an e-mail address:
/// the number is the erased person's data, and importing it with another
/// address would both bring it back and let the person return under a new
/// address. A number since given to someone else is refused too, with a
/// reason that says how to import the rest of the row.
async fn set_aside_erased(
    tx: &mut PgConnection,
    task: &ImportTask,
    batch: &mut Batch,
) -> anyhow::Result<()> {
    let hashes: Vec<(Option<String>, Option<String>)> = batch
        .rows
        .iter()
        .map(|row| {
            (
                row.email.as_ref().map(|e| task.hasher.hash(e.key())),
                row.phone.as_ref().map(|p| task.hasher.hash(p.as_str())),
            )
        })
        .collect();
    let emails: Vec<String> = hashes.iter().filter_map(|h| h.0.clone()).collect();
    let phones: Vec<String> = hashes.iter().filter_map(|h| h.1.clone()).collect();
    if emails.is_empty() && phones.is_empty() {
        return Ok(());
    }
    let erased = privacy::erased_among(tx, task.tenant_id, &emails)
        .await
        .context("checking erased addresses")?;
    let erased_phones = privacy::erased_phones_among(tx, task.tenant_id, &phones)
        .await
        .context("checking erased phone numbers")?;
    if erased.is_empty() && erased_phones.is_empty() {
        return Ok(());
    }

    let rows = std::mem::take(&mut batch.rows);
    for (row, (email, phone)) in rows.into_iter().zip(hashes) {
        let refused = match (email, phone) {
            (Some(hash), _) if erased.contains(&hash) => Some(("email", ERASED_REASON)),
            (_, Some(hash)) if erased_phones.contains(&hash) => {
                Some(("phone", ERASED_PHONE_REASON))
            }
            _ => None,
        };
        match refused {
            Some((field, reason)) => {
                let issue = RowIssue {
                    line: row.line,
                    field,
                    value: "(erased)".into(),
                    reason: reason.into(),
                };
                batch.rejected.push((row.line, vec![issue]));
            }
            None => batch.rows.push(row),
        }
    }
    Ok(())
}

/// How a row is matched to a person.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Email(String),
    /// A person matched by number and name (see `shared_phone`): a row
    /// without e-mail, or one bringing a person without e-mail their address.
    Holder(Uuid),
}

/// What one row says of consent: (granted?, time, evidence, line).
type RowConsent<'a> = (bool, DateTime<Utc>, &'a [(String, String)], u64);

/// One person's worth of rows of a batch, merged.
struct Candidate<'a> {
    id: Uuid,
    /// The person's first row in the batch.
    row: &'a ImportRow,
    /// All of them, in the file's order: a later row fills what the earlier
    /// ones left empty.
    rows: Vec<&'a ImportRow>,
    /// The row whose address the person gets (see `address_row`).
    address: &'a ImportRow,
    tags: Vec<&'a str>,
    external_ids: serde_json::Map<String, serde_json::Value>,
    custom_fields: serde_json::Map<String, serde_json::Value>,
    /// The rows' consent statements in the file's order.
    consent: Vec<RowConsent<'a>>,
}

impl<'a> Candidate<'a> {
    /// The row whose address the person gets: the first with one, unless a
    /// later row tells the same place more fully (as `merge::address_replaced`
    /// has it for a person already known).
    fn address_row(&self) -> &'a ImportRow {
        let has_address = |r: &ImportRow| {
            r.address_line1.is_some() || r.postal_code.is_some() || r.city.is_some()
        };
        let commune = |r: &ImportRow| r.place.and_then(|p| p.commune);
        let mut chosen = self
            .rows
            .iter()
            .copied()
            .find(|r| has_address(r))
            .unwrap_or(self.row);
        for &later in &self.rows {
            let same_code = chosen.postal_code.is_some() && chosen.postal_code == later.postal_code;
            let vaguer = chosen.address_line1.is_none()
                && (commune(chosen).is_none()
                    && commune(later).is_some()
                    && (chosen.postal_code.is_none() || same_code)
                    || later.address_line1.is_some()
                        && same_code
                        && (commune(chosen).is_none() || commune(chosen) == commune(later)));
            if vaguer {
                chosen = later;
            }
        }
        chosen
    }
}

async fn write_batch(
    tx: &mut PgConnection,
    task: &ImportTask,
    terms: &ConsentTerms,
    batch: &Batch,
    phases: &mut Phases,
    clock: &mut std::time::Instant,
) -> anyhow::Result<(Counts, Vec<RowIssue>)> {
    let mut counts = Counts {
        rows_read: (batch.rows.len() + batch.rejected.len()) as i64,
        rows_empty: batch.empty as i64,
        rejected: batch.rejected.len() as i64,
        warnings: batch
            .rows
            .iter()
            .filter(|row| !row.issues.is_empty())
            .count() as i64,
        ..Counts::default()
    };

    let candidates = merge_rows(&batch.rows, &batch.holders);
    let mut ids: HashMap<Key, Uuid> = HashMap::with_capacity(candidates.len());
    let (mut created, mut updated) = (Vec::new(), Vec::new());
    let mut written = Vec::with_capacity(candidates.len());
    for by_email in [true, false] {
        let group: Vec<&Candidate> = candidates
            .iter()
            .filter(|(key, _)| matches!(key, Key::Email(_)) == by_email)
            .map(|(_, candidate)| candidate)
            .collect();
        if group.is_empty() {
            continue;
        }
        written.extend(upsert(tx, task.tenant_id, terms, by_email, &group).await?);
    }
    for person in &written {
        match person.inserted {
            true => created.push(person.id),
            false => updated.push(person.id),
        }
        ids.insert(person.key.clone(), person.id);
    }
    let mut renamed = merged_under_another_name(&batch.rows, &candidates, &written);
    renamed.extend(kept_another_address(&candidates, &written));
    counts.created = created.len() as i64;
    counts.merged = batch.rows.len() as i64 - counts.created;
    for (key, people) in [
        (events::PERSON_CREATED, &created),
        (events::PERSON_UPDATED, &updated),
    ] {
        let bodies = events::person_bodies(people);
        events::person_changed(task.tenant_id, key)
            .enqueue(tx, bodies)
            .await?;
    }

    phases.lap(clock, Phase::People);
    let (granted, suppressed, mut refused) =
        apply_consent(tx, task.tenant_id, terms, &candidates, &ids).await?;
    refused.extend(renamed);
    let warned: HashSet<u64> = batch
        .rows
        .iter()
        .filter(|row| !row.issues.is_empty())
        .map(|row| row.line)
        .collect();
    let newly_warned: HashSet<u64> = refused
        .iter()
        .map(|issue| issue.line)
        .filter(|line| !warned.contains(line))
        .collect();
    counts.warnings += newly_warned.len() as i64;
    phases.lap(clock, Phase::Consent);
    counts.consent_granted = granted;
    counts.suppressed = suppressed;
    Ok((counts, refused))
}

/// Groups the rows of a batch by person, in order of first appearance.
fn merge_rows<'a>(
    rows: &'a [ImportRow],
    holders: &HashMap<u64, Uuid>,
) -> Vec<(Key, Candidate<'a>)> {
    let mut order: Vec<(Key, Candidate)> = Vec::with_capacity(rows.len());
    let mut index: HashMap<Key, usize> = HashMap::with_capacity(rows.len());
    for row in rows {
        let key = match (holders.get(&row.line), &row.email) {
            (Some(holder), _) => Key::Holder(*holder),
            (None, Some(email)) => Key::Email(email.key().to_owned()),
            (None, None) => continue,
        };
        let consent = match &row.consent {
            ConsentStatement::None => None,
            ConsentStatement::Granted { time, evidence } => {
                Some((true, *time, evidence.as_slice(), row.line))
            }
            ConsentStatement::Withdrawn { time, evidence } => {
                Some((false, *time, evidence.as_slice(), row.line))
            }
        };
        // E-mail consent belongs with an address: a row whose address was
        // invalid states nothing about it.
        let consent = consent.filter(|_| row.email.is_some());
        match index.get(&key) {
            Some(&at) => {
                let candidate = &mut order[at].1;
                candidate.rows.push(row);
                for tag in &row.tags {
                    if !candidate.tags.contains(&tag.as_str()) {
                        candidate.tags.push(tag);
                    }
                }
                if let Some((system, id)) = &row.external_id {
                    candidate
                        .external_ids
                        .entry(system.clone())
                        .or_insert(id.clone().into());
                }
                for (key, value) in &row.custom_fields {
                    candidate
                        .custom_fields
                        .entry(key.clone())
                        .or_insert(value.clone());
                }
                candidate.consent.extend(consent);
            }
            None => {
                let mut external_ids = serde_json::Map::new();
                if let Some((system, id)) = &row.external_id {
                    external_ids.insert(system.clone(), id.clone().into());
                }
                let tags = row.tags.iter().map(String::as_str).collect();
                let id = match &key {
                    Key::Holder(holder) => *holder,
                    Key::Email(_) => Uuid::now_v7(),
                };
                index.insert(key.clone(), order.len());
                order.push((
                    key,
                    Candidate {
                        id,
                        row,
                        rows: vec![row],
                        address: row,
                        tags,
                        external_ids,
                        custom_fields: row.custom_fields.clone(),
                        consent: consent.into_iter().collect(),
                    },
                ));
            }
        }
    }
    for (_, candidate) in &mut order {
        candidate.address = candidate.address_row();
    }
    order
}

/// Where a row's address is, when it is in France.
struct Territory {
    place: Option<Place>,
    departement: Option<String>,
    time_zone: Option<&'static str>,
}

impl Territory {
    fn of(row: &ImportRow) -> Self {
        let french = matches!(row.country.as_deref(), None | Some("FR"));
        let Some(postal_code) = row.postal_code.as_deref().filter(|_| french) else {
            return Self {
                place: None,
                departement: None,
                time_zone: None,
            };
        };
        let place = row.place;
        let departement = place
            .map(|p| p.departement.to_owned())
            .or_else(|| departement_of(postal_code));
        let time_zone = departement.as_deref().map(territory::time_zone);
        Self {
            place,
            departement,
            time_zone,
        }
    }
}

const UPSERT_BY_EMAIL: &str = "
    INSERT INTO people AS p (id, tenant_id, first_name, last_name, email, email_key, phone,
        address_line1, postal_code, city, country, departement, birth_date, tags, external_ids,
            commune_insee, region, time_zone, custom_fields, email_consent, email_consent_at,
        email_consent_source, email_consent_evidence)
    SELECT u.id, $1, u.first_name, u.last_name, u.email, u.email_key, u.phone,
        u.address_line1, u.postal_code, u.city, u.country, u.departement, u.birth_date,
        CASE WHEN u.tags = '' THEN '{}'::text[] ELSE string_to_array(u.tags, E'\\x1f') END,
        u.external_ids::jsonb, u.commune_insee, u.region, u.time_zone, u.custom_fields::jsonb,
        COALESCE(u.consent, 'none'), u.consent_at, CASE WHEN u.consent IS NOT NULL THEN $20 END,
        u.consent_evidence::jsonb
    FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
        $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::date[],
        $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[],
        $21::text[], $22::timestamptz[], $23::text[])
        AS u(id, first_name, last_name, email, email_key, phone, address_line1, postal_code,
             city, country, departement, birth_date, tags, external_ids, commune_insee, region,
             time_zone, custom_fields, consent, consent_at, consent_evidence)
    ON CONFLICT {target} DO UPDATE SET
        email = CASE WHEN p.email_key IS NULL THEN EXCLUDED.email ELSE p.email END,
        email_key = COALESCE(p.email_key, EXCLUDED.email_key),
        first_name = COALESCE(p.first_name, EXCLUDED.first_name),
        last_name = COALESCE(p.last_name, EXCLUDED.last_name),
        phone = COALESCE(p.phone, EXCLUDED.phone),
        address_line1 = CASE WHEN {replaced} THEN EXCLUDED.address_line1 ELSE p.address_line1 END,
        postal_code = CASE WHEN {replaced} THEN EXCLUDED.postal_code ELSE p.postal_code END,
        city = CASE WHEN {replaced} THEN EXCLUDED.city ELSE p.city END,
        country = CASE WHEN {replaced} THEN EXCLUDED.country ELSE p.country END,
        departement = CASE WHEN {replaced} THEN EXCLUDED.departement ELSE p.departement END,
        commune_insee = CASE WHEN {replaced} THEN EXCLUDED.commune_insee ELSE p.commune_insee END,
        region = CASE WHEN {replaced} THEN EXCLUDED.region ELSE p.region END,
        time_zone = CASE WHEN {replaced} THEN EXCLUDED.time_zone ELSE p.time_zone END,
        birth_date = COALESCE(p.birth_date, EXCLUDED.birth_date),
        tags = p.tags || ARRAY(SELECT t FROM unnest(EXCLUDED.tags) AS t WHERE t <> ALL(p.tags)),
        external_ids = EXCLUDED.external_ids || p.external_ids,
        custom_fields = EXCLUDED.custom_fields || p.custom_fields,
        updated_at = now()
    RETURNING p.id, p.email_key, (p.xmax = 0) AS inserted, p.first_name, p.last_name,
        p.address_line1, p.postal_code";

fn upsert_sql(by_email: bool) -> String {
    // People without e-mail were matched to their id beforehand (`shared_phone`).
    let target = if by_email {
        "(tenant_id, email_key)"
    } else {
        "(id)"
    };
    let replaced = merge::address_replaced("p", "EXCLUDED");
    UPSERT_BY_EMAIL
        .replace("{target}", target)
        .replace("{replaced}", &replaced)
}

/// Writes a group of candidates, all matched by e-mail or all by phone. A
/// person it creates gets the state the ledger's rules give the import's
/// statement over no state at all, so that recording the statement next
/// leaves the row as it is (a second write of every new row otherwise).
async fn upsert(
    tx: &mut PgConnection,
    tenant: TenantId,
    terms: &ConsentTerms,
    by_email: bool,
    group: &[&Candidate<'_>],
) -> anyhow::Result<Vec<Written>> {
    let column = |f: fn(&ImportRow) -> Option<&str>| -> Vec<Option<&str>> {
        group
            .iter()
            .map(|c| c.rows.iter().find_map(|r| f(r)))
            .collect()
    };
    let addresses: Vec<&ImportRow> = group.iter().map(|c| c.address).collect();
    let address = |f: fn(&ImportRow) -> Option<&str>| -> Vec<Option<&str>> {
        addresses.iter().map(|r| f(r)).collect()
    };
    let ids: Vec<Uuid> = group.iter().map(|c| c.id).collect();
    let places: Vec<Territory> = addresses.iter().map(|r| Territory::of(r)).collect();
    let territory =
        |f: fn(&Territory) -> Option<&str>| -> Vec<Option<&str>> { places.iter().map(f).collect() };
    let tags: Vec<String> = group.iter().map(|c| c.tags.join("\u{1f}")).collect();
    let external_ids: Vec<String> = group
        .iter()
        .map(|c| serde_json::Value::Object(c.external_ids.clone()).to_string())
        .collect();
    let custom_fields: Vec<String> = group
        .iter()
        .map(|c| serde_json::Value::Object(c.custom_fields.clone()).to_string())
        .collect();
    let birth_dates: Vec<Option<chrono::NaiveDate>> = group
        .iter()
        .map(|c| c.rows.iter().find_map(|r| r.birth_date))
        .collect();
    let (mut consents, mut consent_times, mut consent_evidence) = (
        Vec::with_capacity(group.len()),
        Vec::with_capacity(group.len()),
        Vec::with_capacity(group.len()),
    );
    for candidate in group {
        let first = terms.first_state(candidate);
        consents.push(first.as_ref().map(|(state, ..)| state.as_str()));
        consent_times.push(first.as_ref().map(|(_, time, _)| *time));
        consent_evidence.push(first.map(|(.., evidence)| evidence.to_string()));
    }

    type Row = (
        Uuid,
        Option<String>,
        bool,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(upsert_sql(by_email)))
        .bind(tenant)
        .bind(&ids)
        .bind(column(|r| r.first_name.as_deref()))
        .bind(column(|r| r.last_name.as_deref()))
        .bind(column(|r| r.email.as_ref().map(|e| e.as_str())))
        .bind(column(|r| r.email.as_ref().map(|e| e.key())))
        .bind(column(|r| r.phone.as_ref().map(|p| p.as_str())))
        .bind(address(|r| r.address_line1.as_deref()))
        .bind(address(|r| r.postal_code.as_deref()))
        .bind(address(|r| r.city.as_deref()))
        .bind(address(|r| r.country.as_deref()))
        .bind(territory(|t| t.departement.as_deref()))
        .bind(&birth_dates)
        .bind(&tags)
        .bind(&external_ids)
        .bind(territory(|t| t.place.and_then(|p| p.commune)))
        .bind(territory(|t| t.place.map(|p| p.region)))
        .bind(territory(|t| t.time_zone))
        .bind(&custom_fields)
        .bind(&terms.source)
        .bind(&consents)
        .bind(&consent_times)
        .bind(&consent_evidence)
        .fetch_all(&mut *tx)
        .await
        .context("writing people")?;

    Ok(rows
        .into_iter()
        .map(
            |(id, email_key, inserted, first_name, last_name, line1, postal_code)| {
                let key = match (by_email, email_key) {
                    (true, Some(email)) => Key::Email(email),
                    _ => Key::Holder(id),
                };
                Written {
                    key,
                    id,
                    inserted,
                    names: (first_name, last_name),
                    address: (line1, postal_code),
                }
            },
        )
        .collect())
}

/// A person as one upsert left them.
struct Written {
    key: Key,
    id: Uuid,
    inserted: bool,
    /// First and last name, as kept: the person's own when they had them.
    names: (Option<String>, Option<String>),
    /// Street and postal code, as kept.
    address: (Option<String>, Option<String>),
}

/// Why a row's address is named: the person kept theirs.
const ANOTHER_ADDRESS: &str = "the person has another address, which was kept (an import \
    fills an address only where there is none, or a postal code alone): if they moved, change it \
    on the person";

/// The rows whose address differs from the one their person kept (theirs
/// already, or that of an earlier row of the file): an import never
/// overwrites an address, and says so.
fn kept_another_address(candidates: &[(Key, Candidate<'_>)], written: &[Written]) -> Vec<RowIssue> {
    let kept: HashMap<&Key, &Written> = written.iter().map(|w| (&w.key, w)).collect();
    let fold = |text: Option<&str>| text.map(crate::domain::header_key);
    let mut issues = Vec::new();
    for (key, candidate) in candidates {
        let (line1, postal_code) = match kept.get(key) {
            Some(person) if !person.inserted => {
                (person.address.0.as_deref(), person.address.1.as_deref())
            }
            _ => {
                let row = candidate.address;
                (row.address_line1.as_deref(), row.postal_code.as_deref())
            }
        };
        for row in &candidate.rows {
            let same_line1 = || {
                row.address_line1.as_deref() == line1
                    || fold(row.address_line1.as_deref()) == fold(line1)
            };
            let moved = row.postal_code.is_some() && row.postal_code.as_deref() != postal_code
                || row.address_line1.is_some() && line1.is_some() && !same_line1();
            if !moved {
                continue;
            }
            let written = [&row.address_line1, &row.postal_code, &row.city]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            issues.push(RowIssue {
                line: row.line,
                field: "address",
                value: written,
                reason: ANOTHER_ADDRESS.to_owned(),
            });
        }
    }
    issues
}

/// Why a row matched by its address is flagged: its name is another's.
const ANOTHER_NAME: &str = "merged, by this address, into a person of another name, whose name \
    was kept: if they are two people sharing one address, give this one an address of their \
    own and import the row again";

/// The rows merged by their address into a person whose name differs from
/// theirs: one already known (`written`), or one earlier in the batch.
fn merged_under_another_name(
    rows: &[ImportRow],
    candidates: &[(Key, Candidate<'_>)],
    written: &[Written],
) -> Vec<RowIssue> {
    fn names(row: &ImportRow) -> (Option<&str>, Option<&str>) {
        (row.first_name.as_deref(), row.last_name.as_deref())
    }
    let issue = |row: &ImportRow| RowIssue {
        line: row.line,
        field: "email",
        value: row
            .email
            .as_ref()
            .map(|e| e.as_str().to_owned())
            .unwrap_or_default(),
        reason: ANOTHER_NAME.to_owned(),
    };
    let firsts: HashMap<&str, &ImportRow> = candidates
        .iter()
        .filter_map(|(key, candidate)| match key {
            Key::Email(email) => Some((email.as_str(), candidate.row)),
            Key::Holder(_) => None,
        })
        .collect();
    let mut issues = Vec::new();
    for person in written.iter().filter(|person| !person.inserted) {
        let Key::Email(email) = &person.key else {
            continue;
        };
        let Some(row) = firsts.get(email.as_str()) else {
            continue;
        };
        let known = (person.names.0.as_deref(), person.names.1.as_deref());
        if shared_phone::names_differ(known, names(row)) {
            issues.push(issue(row));
        }
    }
    for row in rows {
        let Some(email) = &row.email else { continue };
        let Some(first) = firsts.get(email.key()) else {
            continue;
        };
        if first.line != row.line && shared_phone::names_differ(names(first), names(row)) {
            issues.push(issue(row));
        }
    }
    issues
}

/// Applies the batch's consent statements to the general e-mail consent
/// through the ledger: a grant applies only to a person with no consent
/// state yet — an import never re-subscribes anyone who withdrew, nor asks
/// them to confirm; a withdrawal always applies. Returns (granted, withdrawn).
async fn apply_consent(
    tx: &mut PgConnection,
    tenant: TenantId,
    terms: &ConsentTerms,
    candidates: &[(Key, Candidate<'_>)],
    ids: &HashMap<Key, Uuid>,
) -> anyhow::Result<(i64, i64, Vec<RowIssue>)> {
    let mut statements = Vec::new();
    // The line of each statement that is a grant.
    let mut grant_lines = Vec::new();
    for (key, candidate) in candidates {
        let Some(&person) = ids.get(key) else {
            continue;
        };
        let lines = candidate
            .consent
            .iter()
            .filter(|(is_grant, ..)| !is_grant || terms.grants)
            .map(|&(is_grant, .., line)| is_grant.then_some(line));
        for ((kind, occurred_at, evidence), line) in terms.statements(candidate).zip(lines) {
            grant_lines.push(line);
            statements.push(consent::store::Statement {
                person,
                channel: Channel::Email,
                purpose: "",
                kind,
                legal_basis: terms.legal_basis,
                source: terms.source.clone(),
                notice: terms.notice.clone(),
                occurred_at,
                evidence,
            });
        }
    }
    // The batch's upsert wrote, and so locked, every one of these people.
    let applied = consent::store::record_written(tx, tenant, &statements).await?;
    let granted = applied.iter().filter(|a| a.state == State::Granted).count();
    let refused = refused_grants(tx, tenant, &statements, &grant_lines, &applied).await?;
    Ok((granted as i64, (applied.len() - granted) as i64, refused))
}

/// Why the file's grants to people who withdrew were not applied, on their
/// rows: an import never subscribes anyone again, and an organizer reading
/// "0 granted" should know why and what the person can do.
async fn refused_grants(
    tx: &mut PgConnection,
    tenant: TenantId,
    statements: &[consent::store::Statement],
    grant_lines: &[Option<u64>],
    applied: &[consent::store::Applied],
) -> anyhow::Result<Vec<RowIssue>> {
    let applied: HashSet<usize> = applied.iter().map(|a| a.index).collect();
    let unapplied: Vec<(Uuid, u64)> = statements
        .iter()
        .zip(grant_lines)
        .enumerate()
        .filter(|(index, _)| !applied.contains(index))
        .filter_map(|(_, (statement, line))| Some((statement.person, (*line)?)))
        .collect();
    if unapplied.is_empty() {
        return Ok(Vec::new());
    }
    let people: Vec<Uuid> = unapplied.iter().map(|(person, _)| *person).collect();
    let withdrawn: HashSet<Uuid> = sqlx::query_scalar(
        "SELECT person_id FROM consents WHERE tenant_id = $1 AND person_id = ANY($2)
           AND channel = 'email' AND purpose = '' AND state = 'withdrawn'",
    )
    .bind(tenant)
    .bind(&people)
    .fetch_all(&mut *tx)
    .await
    .context("reading who withdrew")?
    .into_iter()
    .collect();
    Ok(unapplied
        .into_iter()
        .filter(|(person, _)| withdrawn.contains(person))
        .map(|(_, line)| RowIssue {
            line,
            field: "email_consent",
            value: String::new(),
            reason: "not granted: this person withdrew their e-mail consent, and an import \
                     never subscribes anyone again; they can subscribe again through the form, \
                     which asks them to confirm"
                .to_owned(),
        })
        .collect())
}

async fn record_progress(
    tx: &mut PgConnection,
    id: Uuid,
    bytes_read: u64,
    c: Counts,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE imports SET bytes_read = GREATEST(bytes_read, $2), rows_read = rows_read + $3,
            rows_empty = rows_empty + $4, created = created + $5, merged = merged + $6,
            rejected = rejected + $7, warnings = warnings + $8,
            consent_granted = consent_granted + $9, suppressed = suppressed + $10,
            progressed_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(bytes_read as i64)
    .bind(c.rows_read)
    .bind(c.rows_empty)
    .bind(c.created)
    .bind(c.merged)
    .bind(c.rejected)
    .bind(c.warnings)
    .bind(c.consent_granted)
    .bind(c.suppressed)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records the batch's issues, and `later` ones its writing found (a grant
/// refused to someone who withdrew), as warnings.
async fn record_issues(
    tx: &mut PgConnection,
    id: Uuid,
    batch: &Batch,
    later: &[RowIssue],
) -> sqlx::Result<()> {
    let warnings = batch
        .rows
        .iter()
        .flat_map(|row| row.issues.iter())
        .chain(later)
        .map(|i| (i, "warning"));
    let rejections = batch
        .rejected
        .iter()
        .flat_map(|(_, issues)| issues.iter().map(|i| (i, "rejected")));
    let (mut lines, mut fields, mut values, mut reasons, mut severities) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (issue, severity) in warnings.chain(rejections) {
        lines.push(issue.line as i64);
        fields.push(issue.field);
        values.push(issue.value.as_str());
        reasons.push(issue.reason.as_str());
        severities.push(severity);
    }
    if lines.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO import_issues (import_id, line, field, value, reason, severity)
         SELECT $1, * FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[])",
    )
    .bind(id)
    .bind(&lines)
    .bind(&fields)
    .bind(&values)
    .bind(&reasons)
    .bind(&severities)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// What kind of failure ended an import, for the log.
fn failure_kind(error: &anyhow::Error) -> &'static str {
    if error.chain().any(|e| e.is::<super::ImportError>()) {
        "the file was refused"
    } else if let Some(e) = error.chain().find_map(|e| e.downcast_ref::<sqlx::Error>()) {
        match e {
            sqlx::Error::Database(_) => "a database statement failed",
            _ => "the database could not be reached",
        }
    } else {
        "the import stopped"
    }
}

/// An error message as stored and shown: no NUL byte (PostgreSQL text cannot
/// hold one), at most 1,000 characters.
fn storable(message: &str) -> String {
    let mut kept: String = message.chars().filter(|c| *c != '\0').take(1_000).collect();
    if message.chars().count() > 1_000 {
        kept.push('…');
    }
    kept
}
