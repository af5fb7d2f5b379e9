//! `muster-bench segments`: segment counts through the contacts service
//! against a hand-written SQL query for the same filter, in the same run, on
//! a fresh database of generated people migrated by the release binary.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use muster_proto::contacts::v1 as contacts;
use muster_proto::contacts::v1::contacts_service_client::ContactsServiceClient;
use muster_runtime::TenantId;
use muster_runtime::auth::{Bearer, Signer};
use sqlx::PgPool;
use tokio::process::Command;

const SECRET: &str = "muster-bench-secret";

/// Filters measured: the text form sent to CountSegment, and the query a
/// person would write by hand for it (`$1` is the tenant).
const FILTERS: [(&str, &str); 10] = [
    (
        "tag:adhérent AND has:email",
        "SELECT count(*) FROM people WHERE tenant_id = $1 \
         AND tags @> '{adhérent}' AND email_key IS NOT NULL",
    ),
    (
        "tag:adhérent AND (departement:75 OR departement:93) \
         AND NOT consent:email=withdrawn AND has:email",
        "SELECT count(*) FROM people WHERE tenant_id = $1 AND tags @> '{adhérent}' \
         AND departement IN ('75', '93') AND email_consent <> 'withdrawn' \
         AND email_key IS NOT NULL",
    ),
    (
        "postal:69 OR postal:38",
        "SELECT count(*) FROM people WHERE tenant_id = $1 \
         AND (postal_code LIKE '69%' OR postal_code LIKE '38%')",
    ),
    (
        "created>=2025-01-01 AND NOT tag:presse",
        "SELECT count(*) FROM people WHERE tenant_id = $1 \
         AND created_at >= '2025-01-01 00:00+01' AND NOT tags @> '{presse}'",
    ),
    (
        "region:84 AND (tag:bénévole OR tag:jeunes) AND consent:email=granted",
        "SELECT count(*) FROM people WHERE tenant_id = $1 AND region = '84' \
         AND tags && '{bénévole,jeunes}' AND email_consent = 'granted'",
    ),
    (
        "field:section=Nord AND tag:adhérent",
        "SELECT count(*) FROM people WHERE tenant_id = $1 \
         AND custom_fields @> '{\"section\": \"Nord\"}' AND tags @> '{adhérent}'",
    ),
    (
        "field:annee>=2020 AND has:email",
        "SELECT count(*) FROM people WHERE tenant_id = $1 \
         AND (custom_fields ->> 'annee')::numeric >= 2020 AND email_key IS NOT NULL",
    ),
    (
        "consent:sms=granted AND consent:email.newsletter=granted",
        "SELECT count(*) FROM people p WHERE tenant_id = $1 \
         AND EXISTS (SELECT 1 FROM consents c WHERE c.tenant_id = $1 AND c.person_id = p.id \
                     AND c.channel = 'sms' AND c.purpose = '' AND c.state = 'granted') \
         AND EXISTS (SELECT 1 FROM consents c WHERE c.tenant_id = $1 AND c.person_id = p.id \
                     AND c.channel = 'email' AND c.purpose = 'newsletter' \
                     AND c.state = 'granted')",
    ),
    (
        "donations.total>=50 AND attended.count>=2",
        "SELECT count(*) FROM people p WHERE tenant_id = $1 \
         AND id IN (SELECT person_id FROM person_donations WHERE tenant_id = $1 \
                    AND currency = 'EUR' AND total_cents >= 5000) \
         AND id IN (SELECT person_id FROM attendance WHERE tenant_id = $1 \
                    AND state = 'attended' GROUP BY person_id HAVING count(*) >= 2)",
    ),
    // Written by hand with correlated subqueries: the same IN sets under OR
    // are re-scanned for every person once they exceed work_mem (minutes at
    // the default 4 MB); contacts reads them under a larger work_mem.
    (
        "donations.total>=50 OR attended.count>=2",
        "SELECT count(*) FROM people p WHERE tenant_id = $1 \
         AND (EXISTS (SELECT 1 FROM person_donations d WHERE d.tenant_id = $1 \
                      AND d.person_id = p.id AND d.currency = 'EUR' AND d.total_cents >= 5000) \
              OR (SELECT count(*) FROM attendance a WHERE a.tenant_id = $1 \
                  AND a.person_id = p.id AND a.state = 'attended') >= 2)",
    ),
];

/// Generates `people` people, then times `runs` counts of each filter both ways.
pub async fn run(people: u64, runs: usize) -> anyhow::Result<()> {
    println!("muster bench segments: {people} people, {runs} interleaved runs per filter");
    let db = muster_testkit::fresh_database("bench_segments").await?;
    let port = muster_testkit::free_port()?;
    let binary = std::env::current_exe()?
        .parent()
        .context("the bench binary's folder")?
        .join("muster-contacts");
    let mut process = start(&binary, &db.url, port)?;
    muster_testkit::wait_for_port(port, Duration::from_secs(60)).await?;

    let pool = PgPool::connect(&db.url).await?;
    let tenant = TenantId::new();
    let started = Instant::now();
    generate(&pool, tenant, people).await?;
    println!(
        "      generated and analyzed in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let token = Signer::new(SECRET).mint("bench", Some(tenant), Duration::from_secs(7200));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
        .connect()
        .await?;
    let mut client = ContactsServiceClient::with_interceptor(channel, Bearer::new(&token));

    let mut rows = Vec::new();
    for (query, sql) in FILTERS {
        let (mut service, mut direct) = (Vec::new(), Vec::new());
        let mut counts = (0, 0);
        // Three warm-up rounds, then `runs` measured, alternating the two.
        for round in 0..runs + 3 {
            let started = Instant::now();
            let request = contacts::CountSegmentRequest {
                filter: Some(contacts::SegmentFilter {
                    query: query.into(),
                    ..Default::default()
                }),
            };
            counts.0 = client.count_segment(request).await?.into_inner().count;
            let through_service = started.elapsed();

            let started = Instant::now();
            let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .fetch_one(&pool)
                .await?;
            let by_hand = started.elapsed();
            counts.1 = count as u64;
            if round >= 3 {
                service.push(through_service);
                direct.push(by_hand);
            }
        }
        anyhow::ensure!(
            counts.0 == counts.1,
            "{query:?}: the service counted {} and the hand-written query {}",
            counts.0,
            counts.1
        );
        rows.push((query, counts.0, percentiles(service), percentiles(direct)));
    }

    println!(
        "\n| filter | people | CountSegment p50 / p95 | hand-written SQL p50 / p95 | p50 ratio |"
    );
    println!("|---|---|---|---|---|");
    for (query, count, service, direct) in rows {
        println!(
            "| `{query}` | {count} | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {:.2} |",
            ms(service.0),
            ms(service.1),
            ms(direct.0),
            ms(direct.1),
            service.0.as_secs_f64() / direct.0.as_secs_f64()
        );
    }

    let _ = process.kill().await;
    pool.close().await;
    muster_testkit::drop_database(&db).await?;
    Ok(())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// The 50th and 95th percentiles (nearest rank).
fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let rank = |p: f64| {
        let index = ((p * samples.len() as f64).ceil() as usize).saturating_sub(1);
        samples.get(index).copied().unwrap_or_default()
    };
    (rank(0.50), rank(0.95))
}

fn start(binary: &Path, url: &str, port: u16) -> anyhow::Result<tokio::process::Child> {
    Command::new(binary)
        .arg("serve")
        .env("MUSTER_DATABASE__URL", url)
        .env("MUSTER_AUTH__TOKEN_SECRET", SECRET)
        .env("MUSTER_TELEMETRY__FILTER", "warn")
        .env("MUSTER_LISTEN__ADDR", format!("127.0.0.1:{port}"))
        .env("MUSTER_LISTEN__ADMIN_ADDR", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "starting {}: build the release binaries first (make bench does)",
                binary.display()
            )
        })
}

/// Inserts `count` people in one statement server-side (arrays unnested by
/// PostgreSQL), with tags, consent, territory and creation dates spread like
/// an organization's file, then analyzes the table.
async fn generate(pool: &PgPool, tenant: TenantId, count: u64) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT setseed(0.42)")
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "WITH territory AS (
             SELECT * FROM unnest(
                 ARRAY['75', '93', '92', '94', '69', '38', '13', '33', '59', '31', '44', '2A',
                       '971', '974', '67', '06'],
                 ARRAY['11', '11', '11', '11', '84', '84', '93', '75', '32', '76', '52', '94',
                       '01', '04', '44', '93']
             ) WITH ORDINALITY AS t(departement, region, slot)
         ),
         drawn AS (
             SELECT n, random() AS r1, random() AS r2, random() AS r3, random() AS r4,
                    random() AS r5, random() AS r6, random() AS r7, random() AS r8, random() AS r9,
                    1 + floor(random() * 16)::int AS place, floor(random() * 1000)::int AS town
             FROM generate_series(1, $2::bigint) AS n
         )
         INSERT INTO people (id, tenant_id, first_name, last_name, email, email_key, phone,
                             postal_code, city, country, departement, commune_insee, region,
                             tags, email_consent, created_at)
         SELECT gen_random_uuid(), $1, 'Camille', 'Martin' || n,
                CASE WHEN r1 < 0.9 THEN 'camille.martin' || n || '@example.org' END,
                CASE WHEN r1 < 0.9 THEN 'camille.martin' || n || '@example.org' END,
                CASE WHEN r2 < 0.6 THEN '+3361' || lpad(n::text, 7, '0') END,
                CASE WHEN r3 < 0.95 THEN left(t.departement || '000', 2)
                     || lpad(town::text, 3, '0') END,
                'Ville', 'FR',
                CASE WHEN r3 < 0.95 THEN t.departement END,
                CASE WHEN r3 < 0.95 THEN left(t.departement || '000', 2)
                     || lpad((town % 300)::text, 3, '0') END,
                CASE WHEN r3 < 0.95 THEN t.region END,
                array_remove(ARRAY[
                    CASE WHEN r4 < 0.30 THEN 'adhérent' END,
                    CASE WHEN r5 < 0.15 THEN 'bénévole' END,
                    CASE WHEN r6 < 0.10 THEN 'jeunes' END,
                    CASE WHEN r7 < 0.50 THEN 'newsletter' END,
                    CASE WHEN r8 < 0.02 THEN 'presse' END
                ], NULL),
                CASE WHEN r9 < 0.70 THEN 'granted'
                     WHEN r9 < 0.80 THEN 'withdrawn' ELSE 'none' END,
                timestamptz '2021-01-01' + (r2 * interval '1800 days')
         FROM drawn JOIN territory t ON t.slot = drawn.place",
    )
    .bind(tenant)
    .bind(count as i64)
    .execute(&mut *conn)
    .await
    .context("generating people")?;
    generate_activity(&mut conn, tenant).await?;
    for table in [
        "people",
        "custom_fields",
        "consents",
        "person_donations",
        "attendance",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Custom fields (a section for 60% of people, a membership year for half),
/// consent per channel and purpose (SMS for 30%, the e-mail newsletter for
/// 40%), donation totals (10%) and event attendance (15%, one to four events).
async fn generate_activity(conn: &mut sqlx::PgConnection, tenant: TenantId) -> anyhow::Result<()> {
    let statements = [
        "INSERT INTO custom_fields (tenant_id, key, label, type, choices) VALUES
            ($1, 'section', 'Section', 'choice', '{Nord,Sud,Est,Ouest}'),
            ($1, 'annee', 'Année d''adhésion', 'number', '{}')",
        "UPDATE people SET custom_fields = jsonb_strip_nulls(jsonb_build_object(
            'section', CASE WHEN random() < 0.6
                THEN (ARRAY['Nord', 'Sud', 'Est', 'Ouest'])[1 + floor(random() * 4)::int] END,
            'annee', CASE WHEN random() < 0.5 THEN 2010 + floor(random() * 16)::int END))
         WHERE tenant_id = $1",
        // One draw per person and condition: a random() beside a join
        // would be planned once per VALUES row or series value instead.
        "INSERT INTO consents (tenant_id, person_id, channel, purpose, state, legal_basis,
                               source, notice, occurred_at)
         SELECT tenant_id, id, 'sms', '', 'granted', 'consent', 'bench', '', now()
         FROM people WHERE tenant_id = $1 AND random() < 0.3",
        "INSERT INTO consents (tenant_id, person_id, channel, purpose, state, legal_basis,
                               source, notice, occurred_at)
         SELECT tenant_id, id, 'email', 'newsletter', 'granted', 'consent', 'bench', '', now()
         FROM people WHERE tenant_id = $1 AND random() < 0.4",
        "INSERT INTO person_donations (tenant_id, person_id, currency, total_cents, last_at)
         SELECT tenant_id, id, 'EUR', 500 + floor(random() * 20000)::bigint,
                timestamptz '2024-01-01' + random() * interval '700 days'
         FROM people WHERE tenant_id = $1 AND random() < 0.1",
        "INSERT INTO attendance (tenant_id, event_id, person_id, state, changed_at)
         SELECT p.tenant_id, 'event-' || e, p.id,
                CASE WHEN random() < 0.8 THEN 'attended' ELSE 'no_show' END, now()
         FROM (SELECT tenant_id, id, random() AS r FROM people WHERE tenant_id = $1
               OFFSET 0) p
         CROSS JOIN LATERAL generate_series(1, 1 + floor(p.r / 0.15 * 3.99)::int) AS e
         WHERE p.r < 0.15",
    ];
    for sql in statements {
        sqlx::query(sql)
            .bind(tenant)
            .execute(&mut *conn)
            .await
            .context("generating custom fields, consent and activity")?;
    }
    Ok(())
}
