//! `make bench`: measures, in one run on this machine, the raw ceiling of the
//! broker (publish with confirms, consume with acks), the raw ceiling of the
//! SMTP sink (pooled client, prebuilt messages), and a campaign end to end
//! through the release binaries of contacts and messaging, then prints them
//! side by side with the ratio and where the time went.

mod campaign;
mod import;
mod raw;
mod segments;

use std::time::Duration;

use anyhow::Context;

/// A rate measured over `count` items.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub count: u64,
    pub elapsed: Duration,
}

impl Rate {
    /// Items per second.
    pub fn per_second(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
}

fn arg(name: &str, default: u64) -> u64 {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("segments") {
        let runs = arg("--runs", 30) as usize;
        return segments::run(arg("--people", 1_000_000), runs).await;
    }
    if std::env::args().nth(1).as_deref() == Some("import") {
        return import::run(arg("--rows", 1_000_000)).await;
    }
    let recipients = arg("--recipients", 100_000);
    let raw_messages = arg("--raw-messages", 20_000);
    println!("muster bench: {recipients} recipients end to end, {raw_messages} raw messages");

    let job_size = raw::send_job_size();
    println!("\n[1/3] raw broker: quorum queue, {job_size}-byte messages, confirms and acks");
    let broker = raw::broker(raw_messages, job_size).await?;
    println!("      {:.0} msg/s", broker.per_second());

    let sample = raw::sample_email();
    println!(
        "\n[2/3] raw SMTP: smtp-sink, pooled client, {}-byte prebuilt messages",
        sample.len()
    );
    // The ceiling is the best of three rounds: one round alone varies with
    // what the machine was still finishing (the broker deleting its queue).
    let (mut smtp, mut smtp_cpu) = (None::<Rate>, 0.0);
    for round in 1..=3 {
        let busy = campaign::machine_seconds();
        let rate = raw::smtp(raw_messages).await?;
        let cpu = campaign::machine_seconds() - busy;
        println!("      round {round}: {:.0} msg/s", rate.per_second());
        if smtp
            .as_ref()
            .is_none_or(|best| rate.per_second() > best.per_second())
        {
            (smtp, smtp_cpu) = (Some(rate), cpu);
        }
    }
    let smtp = smtp.context("three rounds ran")?;

    println!("\n[3/3] campaign end to end: import, launch, send, all received");
    let tuning: Vec<String> = campaign::SENDER_TUNING
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    println!("      messaging runs with {}", tuning.join(" "));
    let run = campaign::run(recipients).await?;

    let per_job = muster_messaging_job_size() as f64;
    let broker_deliveries = broker.per_second() * per_job;
    let ceiling = broker_deliveries.min(smtp.per_second());
    let e2e = run.send.per_second();
    println!("\n| figure | value |");
    println!("|---|---|");
    println!(
        "| raw broker, messages/s (publish+confirm, consume+ack) | {:.0} |",
        broker.per_second()
    );
    println!("| raw broker, deliveries/s at {per_job:.0} per send job | {broker_deliveries:.0} |");
    println!("| raw SMTP sink, messages/s | {:.0} |", smtp.per_second());
    println!("| end to end, launch → last message received, messages/s | {e2e:.0} |");
    println!(
        "| ratio end to end / min(raw ceilings) | {:.2} |",
        e2e / ceiling
    );
    println!(
        "| launch (materialise {} deliveries + jobs) | {:.1} s |",
        run.send.count,
        run.launch.as_secs_f64()
    );
    println!(
        "| sending after launch | {:.1} s |",
        run.sending.as_secs_f64()
    );
    println!(
        "| import of {} rows (for context) | {:.1} s |",
        recipients,
        run.import.as_secs_f64()
    );
    println!(
        "| peak memory, contacts | {} MiB |",
        run.contacts_peak_kib / 1024
    );
    println!(
        "| peak memory, messaging | {} MiB |",
        run.messaging_peak_kib / 1024
    );
    println!(
        "| received by the sink / deliveries sent | {} / {} |",
        run.received, run.send.count
    );

    // Where the two cores go, per message, from launch to the last one
    // received (CPU seconds of each part divided by the messages).
    let per = |seconds: f64, count: u64| seconds * 1e6 / count.max(1) as f64;
    let sent = run.send.count;
    let cpu = run.cpu;
    let rest = cpu.machine - cpu.messaging - cpu.messaging_db - cpu.contacts;
    println!("\n| CPU per message | µs |");
    println!("|---|---|");
    println!(
        "| raw SMTP run, whole machine (client + sink + kernel) | {:.0} |",
        per(smtp_cpu, smtp.count)
    );
    println!(
        "| end to end, whole machine | {:.0} |",
        per(cpu.machine, sent)
    );
    println!("| … messaging process | {:.0} |", per(cpu.messaging, sent));
    println!(
        "| … messaging's PostgreSQL sessions | {:.0} |",
        per(cpu.messaging_db, sent)
    );
    println!("| … contacts process | {:.0} |", per(cpu.contacts, sent));
    println!(
        "| … the rest (sink, broker, kernel, this bench) | {:.0} |",
        per(rest, sent)
    );
    Ok(())
}

fn muster_messaging_job_size() -> usize {
    raw::JOB_DELIVERIES
}
