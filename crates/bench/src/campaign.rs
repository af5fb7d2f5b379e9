//! The campaign end to end: the release binaries of contacts and messaging
//! as separate processes, their own databases and queues, a real smtp-sink.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use muster_proto::contacts::v1 as contacts;
use muster_proto::contacts::v1::contacts_service_client::ContactsServiceClient;
use muster_proto::messaging::v1 as messaging;
use muster_proto::messaging::v1::messaging_service_client::MessagingServiceClient;
use muster_runtime::TenantId;
use muster_runtime::auth::{Bearer, Signer};
use muster_testkit::SmtpSink;
use tokio::process::{Child, Command};

use crate::Rate;

pub const SECRET: &str = "muster-bench-secret";

/// The sender's settings in this run (more in flight than the defaults,
/// which are sized for a shared development machine).
pub const SENDER_TUNING: [(&str, u32); 4] = [
    ("MUSTER_SENDER__CONCURRENCY", 64),
    ("MUSTER_SENDER__GROUP_SIZE", 16),
    ("MUSTER_DATABASE__MAX_CONNECTIONS", 40),
    ("MUSTER_SMTP__POOL_SIZE", SMTP_POOL),
];

/// SMTP connections (and messages in flight) of the sender in this run;
/// the raw SMTP baseline uses as many.
pub const SMTP_POOL: u32 = 32;

/// What the end-to-end run measured.
pub struct Run {
    pub import: Duration,
    pub launch: Duration,
    pub sending: Duration,
    /// Deliveries sent over the time from launch to the last one received.
    pub send: Rate,
    pub received: u64,
    pub contacts_peak_kib: u64,
    pub messaging_peak_kib: u64,
    /// CPU spent from launch to the end of the send.
    pub cpu: Cpu,
}

/// Imports `recipients` consenting people and sends them one campaign.
pub async fn run(recipients: u64) -> anyhow::Result<Run> {
    let sink = SmtpSink::start().await?;
    let amqp = muster_testkit::fresh_amqp();
    let contacts_db = muster_testkit::fresh_database("bench").await?;
    let messaging_db = muster_testkit::fresh_database("bench").await?;
    let bin = std::env::current_exe()?
        .parent()
        .context("the bench binary's folder")?
        .to_owned();
    let (contacts_port, messaging_port) =
        (muster_testkit::free_port()?, muster_testkit::free_port()?);

    let common = |db: &str| {
        vec![
            ("MUSTER_DATABASE__URL", db.to_owned()),
            ("MUSTER_AMQP__PREFIX", amqp.prefix.clone()),
            ("MUSTER_AUTH__TOKEN_SECRET", SECRET.to_owned()),
            ("MUSTER_TELEMETRY__FILTER", "warn".to_owned()),
            ("MUSTER_LISTEN__ADMIN_ADDR", "127.0.0.1:0".to_owned()),
        ]
    };
    let mut contacts_env = common(&contacts_db.url);
    contacts_env.push(("MUSTER_LISTEN__ADDR", format!("127.0.0.1:{contacts_port}")));
    let mut messaging_env = common(&messaging_db.url);
    for (key, value) in SENDER_TUNING {
        messaging_env.push((key, value.to_string()));
    }
    messaging_env.push(("MUSTER_LISTEN__ADDR", format!("127.0.0.1:{messaging_port}")));
    messaging_env.push(("MUSTER_SMTP__PORT", sink.port().to_string()));
    messaging_env.push((
        "MUSTER_SERVICES__CONTACTS_URL",
        format!("http://127.0.0.1:{contacts_port}"),
    ));

    let mut contacts_process = start(&bin.join("muster-contacts"), &contacts_env)?;
    let mut messaging_process = start(&bin.join("muster-messaging"), &messaging_env)?;
    muster_testkit::wait_for_port(contacts_port, Duration::from_secs(30)).await?;
    muster_testkit::wait_for_port(messaging_port, Duration::from_secs(30)).await?;

    let tenant = TenantId::new();
    let token = Signer::new(SECRET).mint("bench", Some(tenant), Duration::from_secs(7200));
    let channel = |port: u16| {
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("a valid address")
            .connect_lazy()
    };
    let mut contacts =
        ContactsServiceClient::with_interceptor(channel(contacts_port), Bearer::new(&token));
    let mut messaging =
        MessagingServiceClient::with_interceptor(channel(messaging_port), Bearer::new(&token));

    let file = std::env::temp_dir().join(format!("muster-bench-{}.csv", muster_testkit::unique()));
    write_people(&file, recipients)?;
    let started = Instant::now();
    import(&mut contacts, &file).await?;
    let import_time = started.elapsed();
    let _ = std::fs::remove_file(&file);
    println!(
        "      imported {recipients} people in {:.1} s",
        import_time.as_secs_f64()
    );
    let settle = Instant::now();
    drain(&contacts_db, &amqp).await?;
    println!(
        "      the import's events reached messaging {:.1} s later",
        settle.elapsed().as_secs_f64()
    );

    let template = messaging
        .create_template(messaging::CreateTemplateRequest {
            template: Some(messaging::Template {
                name: "Bench".into(),
                subject: "Rendez-vous samedi, {{ first_name }}".into(),
                text_body: "Bonjour {{ first_name }},\nLa rentrée militante commence.\n".repeat(8),
                ..Default::default()
            }),
        })
        .await?
        .into_inner();
    let campaign = messaging
        .create_campaign(messaging::CreateCampaignRequest {
            campaign: Some(messaging::Campaign {
                name: "Bench".into(),
                template_id: template.id,
                segment: Some(contacts::SegmentFilter::default()),
                from_email: "equipe@example.org".into(),
                ..Default::default()
            }),
        })
        .await?
        .into_inner();

    let launched_at = Instant::now();
    let launched_wall = SystemTime::now();
    let cpu_before = Cpu::sample(&[&contacts_process, &messaging_process], &messaging_db.url);
    let action = messaging::CampaignActionRequest {
        id: campaign.id.clone(),
    };
    messaging.launch_campaign(action).await?;
    let mut launch = None;
    let mut last_report = Instant::now();
    let done = loop {
        let request = messaging::GetCampaignRequest {
            id: campaign.id.clone(),
        };
        let state = messaging.get_campaign(request).await?.into_inner();
        let counts = state.counts.unwrap_or_default();
        if launch.is_none() && state.state != messaging::CampaignState::Launching as i32 {
            launch = Some(launched_at.elapsed());
        }
        if state.state == messaging::CampaignState::Completed as i32 {
            break counts;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            println!("      … {} of {} sent", counts.sent, counts.total);
            last_report = Instant::now();
        }
        // Each status counts the campaign's deliveries: asking often would
        // load the database the run measures. The end is taken from the
        // sink's files, not from when this loop noticed it.
        let pause = if launch.is_none() { 50 } else { 1_000 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    };
    let cpu =
        Cpu::sample(&[&contacts_process, &messaging_process], &messaging_db.url).since(&cpu_before);
    let (received, last) = received_files(sink.dir())?;
    let elapsed = last
        .duration_since(launched_wall)
        .unwrap_or_else(|_| launched_at.elapsed());
    let launch = launch.unwrap_or(elapsed);
    let contacts_peak_kib = peak_kib(&contacts_process);
    let messaging_peak_kib = peak_kib(&messaging_process);
    let _ = contacts_process.kill().await;
    let _ = messaging_process.kill().await;
    let dir = sink.dir().to_owned();
    sink.stop().await;
    let _ = std::fs::remove_dir_all(dir);
    muster_testkit::drop_database(&contacts_db).await?;
    muster_testkit::drop_database(&messaging_db).await?;
    muster_testkit::drop_topology(&amqp).await?;

    Ok(Run {
        import: import_time,
        launch,
        sending: elapsed.saturating_sub(launch),
        send: Rate {
            count: done.sent,
            elapsed,
        },
        received,
        contacts_peak_kib,
        messaging_peak_kib,
        cpu,
    })
}

/// Waits until contacts has published every event of the import and
/// messaging has consumed them, so that the send is measured on its own.
async fn drain(
    contacts_db: &muster_runtime::config::DatabaseSettings,
    amqp: &muster_runtime::config::AmqpSettings,
) -> anyhow::Result<()> {
    let pool = sqlx::PgPool::connect(&contacts_db.url).await?;
    let bus = muster_runtime::bus::Bus::connect(amqp, "bench-drain").await?;
    let queue = bus.name("messaging.consent");
    loop {
        let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&pool)
            .await?;
        let channel = bus.channel().await?;
        let options = lapin::options::QueueDeclareOptions {
            passive: true,
            durable: true,
            ..Default::default()
        };
        let declared = channel
            .queue_declare(
                queue.as_str().into(),
                options,
                lapin::types::FieldTable::default(),
            )
            .await?;
        let _ = channel.close(200, "done".into()).await;
        if outbox == 0 && declared.message_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    pool.close().await;
    bus.close().await;
    Ok(())
}

pub fn start(binary: &Path, env: &[(&str, String)]) -> anyhow::Result<Child> {
    let mut command = Command::new(binary);
    command
        .arg("all")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().with_context(|| {
        format!(
            "starting {}: build the release binaries first (make bench does)",
            binary.display()
        )
    })
}

/// People in the French Excel export's shape, all consenting to e-mail.
fn write_people(path: &PathBuf, count: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    out.write_all(
        b"Civilite;Prenom;Nom;E-mail;Telephone portable;Adresse;Code postal;Ville;\
          Date de naissance;Etiquettes;Consentement e-mail;Date du consentement;Origine\r\n",
    )?;
    for n in 0..count {
        writeln!(
            out,
            "Mme;Camille;Martin{n};camille.martin{n}@example.org;06 12 34 {:02} {:02};\
             {n}, rue de la Paix;690{:02};Lyon;01/02/1980;adherent, newsletter;oui;\
             17/09/2026 10:04;formulaire site\r",
            n % 100,
            (n / 100) % 100,
            n % 10,
        )?;
    }
    out.flush()?;
    Ok(())
}

async fn import(
    contacts: &mut ContactsServiceClient<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>,
    >,
    path: &Path,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(path)?;
    let header = contacts::ImportHeader {
        file_name: "bench.csv".into(),
        preset: contacts::ImportPreset::FrExcel as i32,
        size_bytes: bytes.len() as u64,
        ..Default::default()
    };
    let mut parts = vec![contacts::UploadImportRequest {
        part: Some(contacts::upload_import_request::Part::Header(header)),
    }];
    for chunk in bytes.chunks(256 * 1024) {
        parts.push(contacts::UploadImportRequest {
            part: Some(contacts::upload_import_request::Part::Chunk(chunk.to_vec())),
        });
    }
    let job = contacts
        .upload_import(futures::stream::iter(parts))
        .await?
        .into_inner();
    loop {
        let request = contacts::GetImportRequest { id: job.id.clone() };
        let job = contacts.get_import(request).await?.into_inner();
        match contacts::ImportState::try_from(job.state)? {
            contacts::ImportState::Succeeded => return Ok(()),
            contacts::ImportState::Failed => anyhow::bail!("the import failed: {}", job.error),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// How many messages the sink wrote under `dir`, and when it wrote the last.
fn received_files(dir: &Path) -> anyhow::Result<(u64, SystemTime)> {
    let (mut count, mut last) = (0, SystemTime::UNIX_EPOCH);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            let (n, at) = received_files(&entry.path())?;
            count += n;
            last = last.max(at);
        } else {
            count += 1;
            last = last.max(entry.metadata()?.modified()?);
        }
    }
    Ok((count, last))
}

/// CPU time (user + system) spent by the services, by messaging's
/// database sessions and by the machine as a whole, in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub contacts: f64,
    pub messaging: f64,
    pub messaging_db: f64,
    pub machine: f64,
}

impl Cpu {
    fn sample(services: &[&Child; 2], messaging_db: &str) -> Self {
        let of = |child: &Child| child.id().map_or(0.0, process_seconds);
        let database = messaging_db.rsplit('/').next().unwrap_or_default();
        Self {
            contacts: of(services[0]),
            messaging: of(services[1]),
            messaging_db: database_sessions_seconds(database),
            machine: machine_seconds(),
        }
    }

    fn since(&self, before: &Cpu) -> Cpu {
        Cpu {
            contacts: self.contacts - before.contacts,
            messaging: self.messaging - before.messaging,
            messaging_db: self.messaging_db - before.messaging_db,
            machine: self.machine - before.machine,
        }
    }
}

/// Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// The CPU seconds of process `pid` so far.
fn process_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): utime, stime
    // are the 12th and 13th of them.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / TICKS
}

/// The CPU seconds of every PostgreSQL session on `database`.
fn database_sessions_seconds(database: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                let cmdline = String::from_utf8_lossy(&cmdline);
                // "postgres: <cluster>: <user> <database> <client> <state>"
                cmdline.starts_with("postgres: ")
                    && cmdline.split_whitespace().any(|word| word == database)
            })
        })
        .map(process_seconds)
        .sum()
}

/// The CPU seconds the whole machine has spent busy.
pub fn machine_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next() else {
        return 0.0;
    };
    let ticks: Vec<f64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy is all but idle
    // and iowait.
    let busy: f64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .take(8)
        .map(|(_, t)| t)
        .sum();
    busy / TICKS
}

/// The peak resident memory of a running child (VmHWM), in KiB.
pub fn peak_kib(child: &Child) -> u64 {
    let Some(pid) = child.id() else { return 0 };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}
