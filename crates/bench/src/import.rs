//! `muster-bench import`: a French Excel export of a million rows imported
//! through contacts, against a raw `COPY` of the same file into an
//! unindexed table, measured in the same run.
//!
//! The file has the shape of the shared export (same columns, separator,
//! date and phone formats, tag lists), its values drawn from that file's,
//! each row with an address of its own.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use muster_proto::contacts::v1 as contacts;
use muster_proto::contacts::v1::contacts_service_client::ContactsServiceClient;
use muster_runtime::TenantId;
use muster_runtime::auth::{Bearer, Signer};
use tokio::io::AsyncReadExt;

use crate::campaign;

/// The shared export the generated rows take their values from, as committed
/// in the repository (a worktree has no `../shared` beside it).
const SAMPLE: &str = "data/contacts/adherents-export-excel-fr.csv";

/// What one import run measured.
struct Import {
    rows: u64,
    elapsed: Duration,
    peak_kib: u64,
    /// The people written, and the time one INSERT of them into an empty
    /// copy of the indexed table takes.
    indexed: (u64, Duration),
    /// The time the same people take to be inserted into a copy without
    /// indexes whose indexes are then built: the fastest way PostgreSQL has
    /// to write them where segments and matching find them.
    bulk: Duration,
}

/// Generates `rows` rows, copies them raw, imports a tenth of them and then
/// all of them, and prints the table.
pub async fn run(rows: u64) -> anyhow::Result<()> {
    println!("muster bench import: {rows} rows in the French Excel export format");
    let file = std::env::temp_dir().join(format!("muster-import-{}.csv", muster_testkit::unique()));
    let started = Instant::now();
    let bytes = generate(&file, rows)?;
    println!(
        "      wrote {} MB in {:.1} s",
        bytes / 1_000_000,
        started.elapsed().as_secs_f64()
    );

    println!("\n[1/3] raw COPY into an unindexed table");
    let copy = raw_copy(&file).await?;
    println!("      {:.0} rows/s", rows as f64 / copy.as_secs_f64());

    println!(
        "\n[2/3] import of the first {} rows through contacts",
        rows / 10
    );
    let tenth =
        std::env::temp_dir().join(format!("muster-import-{}.csv", muster_testkit::unique()));
    generate(&tenth, rows / 10)?;
    let small = import(&tenth, rows / 10).await;
    let _ = std::fs::remove_file(&tenth);
    let small = small?;

    println!("\n[3/3] import of all {rows} rows through contacts");
    let full = import(&file, rows).await;
    let _ = std::fs::remove_file(&file);
    let full = full?;

    let rate = |n: u64, elapsed: Duration| n as f64 / elapsed.as_secs_f64();
    let copy_rate = rate(rows, copy);
    let import_rate = rate(full.rows, full.elapsed);
    println!("\n| figure | value |");
    println!("|---|---|");
    println!("| raw COPY, rows/s | {copy_rate:.0} |");
    println!("| import through contacts, rows/s | {import_rate:.0} |");
    println!(
        "| ratio import / raw COPY | {:.2} |",
        import_rate / copy_rate
    );
    let indexed_rate = rate(full.indexed.0, full.indexed.1);
    println!(
        "| raw INSERT of the imported people into the indexed table, rows/s | {indexed_rate:.0} |"
    );
    println!(
        "| ratio raw indexed INSERT / raw COPY (the schema's share) | {:.2} |",
        indexed_rate / copy_rate
    );
    println!(
        "| ratio import / raw indexed INSERT (the service's share) | {:.2} |",
        import_rate / indexed_rate
    );
    let bulk_rate = rate(full.indexed.0, full.bulk);
    println!(
        "| raw INSERT into an unindexed copy, then its indexes built, rows/s | {bulk_rate:.0} |"
    );
    println!(
        "| ratio of that bulk load / raw COPY (the most PostgreSQL allows) | {:.2} |",
        bulk_rate / copy_rate
    );
    println!(
        "| import of {} rows | {:.1} s |",
        full.rows,
        full.elapsed.as_secs_f64()
    );
    println!(
        "| peak memory of contacts, {} rows / {} rows | {} MiB / {} MiB |",
        small.rows,
        full.rows,
        small.peak_kib / 1024,
        full.peak_kib / 1024
    );
    Ok(())
}

/// Column values of the shared export, each row of the output drawing
/// from them.
struct Pools {
    columns: Vec<Vec<String>>,
}

impl Pools {
    fn read() -> anyhow::Result<Self> {
        let path = muster_testkit::repo_root().join(SAMPLE);
        let raw = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let (text, _, _) = encoding_rs::WINDOWS_1252.decode(&raw);
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(b';')
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut columns: Vec<Vec<String>> = vec![Vec::new(); 14];
        for record in reader.records() {
            let Ok(record) = record else { continue };
            // Rows with every column and an address: the well-formed ones.
            if record.len() < 13 || !record.get(3).unwrap_or_default().contains('@') {
                continue;
            }
            for (column, value) in record.iter().enumerate().take(14) {
                columns[column].push(value.to_owned());
            }
        }
        anyhow::ensure!(
            columns[0].len() > 1000,
            "{} has too few well-formed rows",
            path.display()
        );
        Ok(Self { columns })
    }

    /// Row `n`: each column from a different sample row, the address made
    /// unique.
    fn row(&self, n: u64) -> Vec<String> {
        let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut row: Vec<String> = self
            .columns
            .iter()
            .map(|values| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                values
                    .get(state as usize % values.len().max(1))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        let address = &row[3];
        let (local, domain) = address
            .split_once('@')
            .unwrap_or(("contact", "example.org"));
        row[3] = format!("{local}.{n}@{domain}");
        row
    }
}

/// Writes the header and `rows` rows to `path` (UTF-8, `;`, CRLF);
/// returns the file's size.
fn generate(path: &Path, rows: u64) -> anyhow::Result<u64> {
    let pools = Pools::read()?;
    let mut out = csv::WriterBuilder::new()
        .delimiter(b';')
        .terminator(csv::Terminator::CRLF)
        .from_path(path)?;
    out.write_record([
        "Civilité",
        "Prénom",
        "Nom",
        "E-mail",
        "Téléphone portable",
        "Adresse",
        "Code postal",
        "Ville",
        "Date de naissance",
        "Étiquettes",
        "Consentement e-mail",
        "Date du consentement",
        "Origine",
        "Dernier don (€)",
    ])?;
    for n in 0..rows {
        out.write_record(pools.row(n))?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// Copies the file as it is into a table of text columns without indexes.
async fn raw_copy(file: &Path) -> anyhow::Result<Duration> {
    let database = muster_testkit::fresh_database("bench_copy").await?;
    let pool = sqlx::PgPool::connect(&database.url).await?;
    let columns: Vec<String> = (0..14).map(|n| format!("c{n} text")).collect();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE raw_people ({})",
        columns.join(", ")
    )))
    .execute(&pool)
    .await?;
    let started = Instant::now();
    let mut connection = pool.acquire().await?;
    let mut copy = connection
        .copy_in_raw("COPY raw_people FROM STDIN (FORMAT csv, DELIMITER ';', HEADER true)")
        .await?;
    let mut reader = tokio::fs::File::open(file).await?;
    let mut buffer = vec![0; 256 * 1024];
    loop {
        let read = reader.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        copy.send(&buffer[..read]).await?;
    }
    let copied = copy.finish().await?;
    let elapsed = started.elapsed();
    drop(connection);
    pool.close().await;
    muster_testkit::drop_database(&database).await?;
    anyhow::ensure!(copied > 0, "COPY took no rows");
    Ok(elapsed)
}

/// Imports `file` through a contacts process of its own; the time runs from
/// the first byte uploaded to the job's end.
async fn import(file: &Path, rows: u64) -> anyhow::Result<Import> {
    let database = muster_testkit::fresh_database("bench_import").await?;
    let amqp = muster_testkit::fresh_amqp();
    let port = muster_testkit::free_port()?;
    let env = vec![
        ("MUSTER_DATABASE__URL", database.url.clone()),
        ("MUSTER_AMQP__PREFIX", amqp.prefix.clone()),
        ("MUSTER_AUTH__TOKEN_SECRET", campaign::SECRET.to_owned()),
        ("MUSTER_TELEMETRY__FILTER", "warn".to_owned()),
        ("MUSTER_LISTEN__ADMIN_ADDR", "127.0.0.1:0".to_owned()),
        ("MUSTER_LISTEN__ADDR", format!("127.0.0.1:{port}")),
    ];
    let bin = std::env::current_exe()?
        .parent()
        .context("the bench binary's folder")?
        .join("muster-contacts");
    let mut process = campaign::start(&bin, &env)?;
    muster_testkit::wait_for_port(port, Duration::from_secs(30)).await?;
    let token = Signer::new(campaign::SECRET).mint(
        "bench",
        Some(TenantId::new()),
        Duration::from_secs(7200),
    );
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?.connect_lazy();
    let mut client = ContactsServiceClient::with_interceptor(channel, Bearer::new(&token));

    let started = Instant::now();
    let job = upload(&mut client, file).await?;
    let mut last_report = Instant::now();
    let job = loop {
        let request = contacts::GetImportRequest { id: job.clone() };
        let job = client.get_import(request).await?.into_inner();
        match contacts::ImportState::try_from(job.state)? {
            contacts::ImportState::Succeeded => break job,
            contacts::ImportState::Failed => anyhow::bail!("the import failed: {}", job.error),
            _ => {}
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            let read = job.counts.unwrap_or_default().rows_read;
            println!("      … {read} of {rows} rows");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let elapsed = started.elapsed();
    let peak_kib = campaign::peak_kib(&process);
    let _ = process.kill().await;
    let written = write_again(&database.url).await;
    muster_testkit::drop_database(&database).await?;
    let (indexed, bulk) = written?;
    muster_testkit::drop_topology(&amqp).await?;
    let counts = job.counts.unwrap_or_default();
    println!(
        "      {} rows read, {} created, {} merged, {} rejected in {:.1} s",
        counts.rows_read,
        counts.created,
        counts.merged,
        counts.rejected,
        elapsed.as_secs_f64()
    );
    anyhow::ensure!(
        counts.created + counts.merged >= rows * 99 / 100,
        "only {} of {rows} rows were imported",
        counts.created + counts.merged
    );
    Ok(Import {
        rows: counts.rows_read,
        elapsed,
        peak_kib,
        indexed,
        bulk,
    })
}

/// The people the import wrote, written again by PostgreSQL alone, twice:
/// by one INSERT into an empty copy of `people` with the same indexes, and by
/// one INSERT into a copy without indexes whose indexes are then built (with
/// the parallel workers PostgreSQL allows). The first is what any import that
/// adds people to a populated table pays; the second is the floor, possible
/// only into a table nobody else reads.
async fn write_again(url: &str) -> anyhow::Result<((u64, Duration), Duration)> {
    let pool = sqlx::PgPool::connect(url).await?;
    // Autovacuum would otherwise visit the million rows just imported while
    // this runs.
    sqlx::raw_sql("VACUUM people").execute(&pool).await?;
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_name = 'people' AND is_generated = 'NEVER' ORDER BY ordinal_position",
    )
    .fetch_all(&pool)
    .await?;
    let columns = columns.join(", ");
    let copy_into = |table: &str| {
        format!("INSERT INTO {table} ({columns}) SELECT {columns} FROM people ORDER BY id")
    };

    sqlx::raw_sql(
        "CREATE TABLE people_again (LIKE people INCLUDING ALL)
             WITH (autovacuum_enabled = false)",
    )
    .execute(&pool)
    .await?;
    let started = Instant::now();
    let written = sqlx::raw_sql(sqlx::AssertSqlSafe(copy_into("people_again")))
        .execute(&pool)
        .await?
        .rows_affected();
    let indexed = (written, started.elapsed());
    sqlx::raw_sql("DROP TABLE people_again")
        .execute(&pool)
        .await?;

    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index
         WHERE indrelid = 'people'::regclass ORDER BY indexrelid",
    )
    .fetch_all(&pool)
    .await?;
    sqlx::raw_sql(
        "CREATE TABLE people_bulk
             (LIKE people INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS)
             WITH (autovacuum_enabled = false)",
    )
    .execute(&pool)
    .await?;
    let mut connection = pool.acquire().await?;
    sqlx::raw_sql("SET maintenance_work_mem = '256MB'")
        .execute(&mut *connection)
        .await?;
    let started = Instant::now();
    sqlx::raw_sql(sqlx::AssertSqlSafe(copy_into("people_bulk")))
        .execute(&mut *connection)
        .await?;
    for (n, definition) in indexes.iter().enumerate() {
        // "CREATE [UNIQUE] INDEX people_x ON public.people USING ..."
        let (head, tail) = definition
            .split_once(" ON public.people ")
            .context("an index definition of people")?;
        let head = head.rsplit_once(' ').map_or(head, |(create, _name)| create);
        let statement = format!("{head} people_bulk_{n} ON people_bulk {tail}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut *connection)
            .await?;
    }
    let bulk = started.elapsed();
    drop(connection);
    pool.close().await;
    Ok((indexed, bulk))
}

/// Streams the file to contacts in 256 KiB parts; returns the job's id.
async fn upload(
    client: &mut ContactsServiceClient<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>,
    >,
    file: &Path,
) -> anyhow::Result<String> {
    let size = std::fs::metadata(file)?.len();
    let header = contacts::ImportHeader {
        file_name: "adherents-1m.csv".into(),
        preset: contacts::ImportPreset::FrExcel as i32,
        size_bytes: size,
        ..Default::default()
    };
    let mut reader = tokio::fs::File::open(file).await?;
    let parts = async_stream::stream! {
        yield contacts::UploadImportRequest {
            part: Some(contacts::upload_import_request::Part::Header(header)),
        };
        loop {
            let mut chunk = vec![0; 256 * 1024];
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    chunk.truncate(read);
                    yield contacts::UploadImportRequest {
                        part: Some(contacts::upload_import_request::Part::Chunk(chunk)),
                    };
                }
            }
        }
    };
    Ok(client.upload_import(parts).await?.into_inner().id)
}
