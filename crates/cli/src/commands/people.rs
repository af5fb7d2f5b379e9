//! `muster people list`, also to find a person by address or number.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::gateway::Gateway;
use crate::models::{PeoplePage, Person, decode};
use crate::output::Output;

const PAGE_SIZE: usize = 200;

#[derive(Subcommand)]
pub enum PeopleCommand {
    /// List people, oldest first, or find one by address or number.
    List {
        /// How many people to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only the person with this e-mail address (theirs or merged into
        /// them), e.g. for an access or erasure request.
        #[arg(long)]
        email: Option<String>,
        /// Only the people with this phone number.
        #[arg(long)]
        phone: Option<String>,
    },
}

pub async fn run(command: PeopleCommand, gateway: &Gateway, output: &Output) -> anyhow::Result<()> {
    let PeopleCommand::List {
        limit,
        email,
        phone,
    } = command;
    let lookup: Vec<(&str, String)> = [("email", email), ("phone", phone)]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect();
    let people = list(gateway, limit, &lookup).await?;

    if output.is_json() {
        output.print_json(&json!({ "people": people }));
        return Ok(());
    }
    for raw in &people {
        print_person(&decode(raw)?);
    }
    match (people.is_empty(), lookup.is_empty()) {
        (true, true) => println!("No people yet: `muster import FILE --preset P` adds some."),
        (true, false) => println!("No one has this address or number."),
        _ => {}
    }
    Ok(())
}

/// Up to `limit` people matching `lookup` (`email`, `phone`), fetched page
/// after page.
async fn list(
    gateway: &Gateway,
    limit: usize,
    lookup: &[(&str, String)],
) -> anyhow::Result<Vec<Value>> {
    let mut people = Vec::new();
    let mut token = String::new();
    while people.len() < limit {
        let size = PAGE_SIZE.min(limit - people.len());
        let mut query = vec![
            ("page_size", size.to_string()),
            ("page_token", token.clone()),
        ];
        query.extend(lookup.iter().map(|(name, value)| (*name, value.clone())));
        let page: PeoplePage = decode(&gateway.get(&["v1", "people"], &query).await?)?;
        let empty = page.people.is_empty();
        people.extend(page.people);
        match page.next_page_token {
            Some(next) if !next.is_empty() && !empty => token = next,
            _ => break,
        }
    }
    people.truncate(limit);
    Ok(people)
}

fn print_person(person: &Person) {
    let name = [person.first_name.as_deref(), person.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let consent = person
        .email_consent
        .as_ref()
        .map_or("-", |consent| consent.state.as_str());
    println!(
        "{}  {:<28} {:<36} {:<10} {}",
        person.id,
        name,
        person.email.as_deref().unwrap_or("-"),
        consent,
        person.tags.join(",")
    );
}
