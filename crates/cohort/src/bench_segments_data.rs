//! The store `cohort bench segments` measures: a shop's two years of
//! profiles and events, generated from a seed and written straight into
//! the tables in the form the projector leaves them (the log's `events`
//! rows with their JSON payloads, `cluster_events` placing each on its
//! profile, `profiles`, `orders`, `order_lines`, `profile_tags`), and the
//! same rows as CSV for DuckDB. Going through ingestion and projection would
//! take hours for 10 M events on a small machine; the test at the bottom
//! holds these rows equal to what the projector makes of the same events.
//!
//! People are born one after another over the first 85 % of the two years,
//! each with an `identify` (email for most, country, first name) as their
//! first event. Each day then has its share of the events (growing over
//! time): shopping sessions (`Product Viewed` of mostly one category,
//! sometimes `Product Added`, `Checkout Started`, `Order Completed`) and
//! email (`Email Delivered`, sometimes `Email Opened`, then
//! `Email Link Clicked`). Three in a hundred people carry the merchant's
//! tag `vip` (no event sets such a tag yet; it is written as a tag row).

use std::io::Write;

use cohort_domain::profile::{interpret::interpret, profile_id, LogEvent};
use cohort_store::bulk::{BulkLoader, Cell};
use serde_json::{json, Value};

pub(crate) const DAY_US: i64 = 86_400_000_000;
/// The end of the two years, and the instant rules are evaluated at:
/// 2026-12-01T00:00:00Z.
pub(crate) const NOW_US: i64 = 1_796_083_200_000_000;
const DAYS: i64 = 730;
pub(crate) const START_US: i64 = NOW_US - DAYS * DAY_US;

pub(crate) const CATEGORIES: [&str; 6] = ["Shoes", "Hats", "Bags", "Shirts", "Jackets", "Socks"];
const PRODUCTS: u32 = 240;
const COUNTRIES: [(&str, u32); 7] = [
    ("DE", 20),
    ("FR", 15),
    ("NL", 10),
    ("US", 25),
    ("GB", 15),
    ("AT", 5),
    ("", 10),
];
const FIRST_NAMES: [&str; 8] = [
    "Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hugo",
];

/// SplitMix64: small, fast and the same on every machine and version.
#[derive(Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1A4_F87D)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// A person's fixed attributes, from the seed and their number.
pub(crate) struct Person {
    pub(crate) email: Option<String>,
    pub(crate) country: Option<&'static str>,
    pub(crate) first_name: &'static str,
    pub(crate) vip: bool,
}

pub(crate) fn person(seed: u64, p: u32) -> Person {
    let mut r = Rng::new(seed.wrapping_mul(31).wrapping_add(u64::from(p) << 20));
    let email = (!r.chance(0.08)).then(|| format!("person{p}@example.com"));
    let mut pick = r.below(100) as u32;
    let mut country = None;
    for (c, w) in COUNTRIES {
        if pick < w {
            country = (!c.is_empty()).then_some(c);
            break;
        }
        pick -= w;
    }
    let first_name = FIRST_NAMES[r.below(FIRST_NAMES.len() as u64) as usize];
    let vip = r.chance(0.03);
    Person {
        email,
        country,
        first_name,
        vip,
    }
}

fn category_of(product: u32) -> &'static str {
    CATEGORIES[(product % CATEGORIES.len() as u32) as usize]
}

fn price_cents(product: u32) -> i64 {
    500 + i64::from(product * 37 % 150) * 100
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn rfc3339(us: i64) -> String {
    cohort_domain::time::format_rfc3339(cohort_domain::time::from_micros(us))
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Identify,
    Viewed { product: u32 },
    Added { product: u32 },
    Checkout { products: Vec<u32> },
    Order { number: u64, products: Vec<u32> },
    Email { event: &'static str, campaign: u32 },
}

/// One generated event: whose, when, what; `seq` its place in the log.
#[derive(Debug, Clone)]
pub(crate) struct GenEvent {
    pub(crate) seq: i64,
    pub(crate) person: u32,
    pub(crate) at_us: i64,
    pub(crate) kind: Kind,
}

impl GenEvent {
    pub(crate) fn message_id(&self) -> String {
        format!("bench-{}", self.seq)
    }

    pub(crate) fn event_name(&self) -> Option<&'static str> {
        Some(match &self.kind {
            Kind::Identify => return None,
            Kind::Viewed { .. } => "Product Viewed",
            Kind::Added { .. } => "Product Added",
            Kind::Checkout { .. } => "Checkout Started",
            Kind::Order { .. } => "Order Completed",
            Kind::Email { event, .. } => event,
        })
    }

    fn total_cents(products: &[u32]) -> i64 {
        products.iter().map(|p| price_cents(*p)).sum::<i64>() + 490
    }

    /// The Segment message as a client sends it (no `receivedAt`).
    pub(crate) fn message(&self, seed: u64) -> Value {
        let line = |p: u32| {
            json!({"product_id": p.to_string(), "sku": format!("SKU-{p}"), "name": format!("Product {p}"),
                   "category": category_of(p), "price": money(price_cents(p)), "quantity": 1})
        };
        let mut m = json!({
            "messageId": self.message_id(),
            "timestamp": rfc3339(self.at_us),
            "userId": format!("u{}", self.person),
            "context": {"library": {"name": "analytics.js", "version": "5.2.0"},
                        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"},
        });
        match &self.kind {
            Kind::Identify => {
                let who = person(seed, self.person);
                let mut traits = serde_json::Map::new();
                if let Some(e) = &who.email {
                    traits.insert("email".into(), json!(e));
                }
                if let Some(c) = who.country {
                    traits.insert("country".into(), json!(c));
                }
                traits.insert("first_name".into(), json!(who.first_name));
                m["type"] = json!("identify");
                m["traits"] = Value::Object(traits);
            }
            other => {
                m["type"] = json!("track");
                m["event"] = json!(self.event_name());
                m["properties"] = match other {
                    Kind::Viewed { product } => {
                        let mut l = line(*product);
                        l.as_object_mut().map(|o| o.remove("quantity"));
                        l
                    }
                    Kind::Added { product } => {
                        let mut l = line(*product);
                        l["cart_id"] = json!(format!("cart-{}", self.person));
                        l
                    }
                    Kind::Checkout { products } => json!({
                        "checkout_id": format!("co-{}", self.seq),
                        "value": money(Self::total_cents(products)), "currency": "EUR",
                        "products": products.iter().map(|p| line(*p)).collect::<Vec<_>>()}),
                    Kind::Order { number, products } => json!({
                        "order_id": number.to_string(),
                        "total": money(Self::total_cents(products)), "shipping": "4.90", "currency": "EUR",
                        "products": products.iter().map(|p| line(*p)).collect::<Vec<_>>()}),
                    Kind::Email { campaign, .. } => json!({
                        "campaign_id": format!("cmp-{campaign}"), "campaign_name": format!("Campaign {campaign}"),
                        "email_subject": "News from the shop", "email_id": format!("em-{}", self.seq)}),
                    Kind::Identify => Value::Null,
                };
            }
        }
        m
    }
}

/// Each day's events in time order, numbered from 1 across the whole log.
pub(crate) struct Generator {
    profiles: u32,
    track_events: u64,
    day: i64,
    next_seq: i64,
    next_order: u64,
    written_tracks: u64,
    carry: u64,
    rng: Rng,
}

impl Generator {
    pub(crate) fn new(seed: u64, profiles: u32, events: u64) -> Self {
        Generator {
            profiles: profiles.max(1),
            track_events: events.saturating_sub(u64::from(profiles)),
            day: 0,
            next_seq: 1,
            next_order: 100_000,
            written_tracks: 0,
            carry: 0,
            rng: Rng::new(seed),
        }
    }

    /// When person `p` is born (their identify): spread evenly over the
    /// first 85 % of the two years.
    pub(crate) fn birth_us(&self, p: u32) -> i64 {
        START_US
            + (i128::from(p) * i128::from(DAYS * DAY_US * 85 / 100) / i128::from(self.profiles))
                as i64
    }

    /// People born before `t`.
    fn born_before(&self, t: i64) -> u32 {
        let span = i128::from(DAYS * DAY_US * 85 / 100);
        let a = i128::from(t - START_US) * i128::from(self.profiles);
        let n = if a <= 0 { 0 } else { (a + span - 1) / span };
        n.clamp(0, i128::from(self.profiles)) as u32
    }

    /// The next day, or `None` after the last.
    pub(crate) fn next_day(&mut self) -> Option<Vec<GenEvent>> {
        if self.day >= DAYS {
            return None;
        }
        let t0 = START_US + self.day * DAY_US;
        let t1 = t0 + DAY_US;
        let mut out: Vec<GenEvent> = Vec::new();
        // Births today.
        for p in self.born_before(t0)..self.born_before(t1) {
            out.push(GenEvent {
                seq: 0,
                person: p,
                at_us: self.birth_us(p),
                kind: Kind::Identify,
            });
        }
        // Today's share of the track events: weight 1 + 2·day/730, so the
        // last day has three times the first's.
        let total_weight = DAYS as f64 * 2.0;
        let upto = |d: i64| -> f64 { d as f64 + (d as f64) * (d as f64) / DAYS as f64 };
        let target = if self.day == DAYS - 1 {
            self.track_events
        } else {
            (self.track_events as f64 * upto(self.day + 1) / total_weight) as u64
        };
        let mut budget = target.saturating_sub(self.written_tracks) + self.carry;
        self.carry = 0;
        let eligible = self.born_before(t0);
        if eligible == 0 {
            self.carry = budget;
            budget = 0;
        }
        let r = &mut self.rng;
        let mut tracks = 0u64;
        while tracks < budget {
            // Older customers come back more often.
            let who = ((eligible as f64) * r.unit().powf(1.3)) as u32;
            let who = who.min(eligible - 1);
            let at = t0 + r.below((DAY_US - 3_600_000_000) as u64) as i64;
            let push = |kind: Kind, at: i64, out: &mut Vec<GenEvent>, n: &mut u64| {
                if *n < budget && at < t1 {
                    out.push(GenEvent {
                        seq: 0,
                        person: who,
                        at_us: at,
                        kind,
                    });
                    *n += 1;
                }
            };
            if r.chance(0.35) {
                let campaign = (self.day / 3) as u32;
                push(
                    Kind::Email {
                        event: "Email Delivered",
                        campaign,
                    },
                    at,
                    &mut out,
                    &mut tracks,
                );
                if r.chance(0.3) {
                    let opened = at + r.below(6 * 3_600_000_000) as i64;
                    push(
                        Kind::Email {
                            event: "Email Opened",
                            campaign,
                        },
                        opened,
                        &mut out,
                        &mut tracks,
                    );
                    if r.chance(0.25) {
                        let clicked = opened + r.below(600_000_000) as i64;
                        push(
                            Kind::Email {
                                event: "Email Link Clicked",
                                campaign,
                            },
                            clicked,
                            &mut out,
                            &mut tracks,
                        );
                    }
                }
            } else {
                let home = r.below(CATEGORIES.len() as u64) as u32;
                // Shoes are a quarter of the browsing.
                let home = if r.chance(0.15) { 0 } else { home };
                let views = 1 + (r.unit().ln() / 0.6f64.ln()).floor().min(12.0) as u32;
                let mut at = at;
                let mut seen = Vec::new();
                for _ in 0..views {
                    let category = if r.chance(0.8) {
                        home
                    } else {
                        r.below(6) as u32
                    };
                    let product = category + 6 * r.below(u64::from(PRODUCTS / 6)) as u32;
                    seen.push(product);
                    push(Kind::Viewed { product }, at, &mut out, &mut tracks);
                    at += 20_000_000 + r.below(100_000_000) as i64;
                }
                if r.chance(0.3) {
                    let mut cart = vec![seen[seen.len() - 1]];
                    push(Kind::Added { product: cart[0] }, at, &mut out, &mut tracks);
                    if seen.len() > 2 && r.chance(0.3) {
                        cart.push(seen[0]);
                        at += 30_000_000;
                        push(Kind::Added { product: seen[0] }, at, &mut out, &mut tracks);
                    }
                    if r.chance(0.55) {
                        at += 60_000_000 + r.below(300_000_000) as i64;
                        push(
                            Kind::Checkout {
                                products: cart.clone(),
                            },
                            at,
                            &mut out,
                            &mut tracks,
                        );
                        if r.chance(0.65) {
                            at += 60_000_000 + r.below(300_000_000) as i64;
                            self.next_order += 1;
                            push(
                                Kind::Order {
                                    number: self.next_order,
                                    products: cart,
                                },
                                at,
                                &mut out,
                                &mut tracks,
                            );
                        }
                    }
                }
            }
        }
        self.written_tracks += tracks;
        out.sort_by_key(|e| e.at_us);
        // Distinct times: the fold orders by (time, messageId) and the
        // generator's bookkeeping by time alone.
        let mut last = i64::MIN;
        for e in &mut out {
            if e.at_us <= last {
                e.at_us = last + 1;
            }
            last = e.at_us;
            e.seq = self.next_seq;
            self.next_seq += 1;
        }
        self.day += 1;
        Some(out)
    }
}

/// What the projector folds per profile, kept as the log is written.
pub(crate) struct ProfileState {
    pub(crate) id: String,
    pub(crate) first_seen_us: i64,
    pub(crate) last_seen_us: i64,
    pub(crate) orders: i64,
    pub(crate) spent_cents: i64,
    pub(crate) first_order_us: Option<i64>,
    pub(crate) last_order_us: Option<i64>,
    pub(crate) last_cart_us: Option<i64>,
    pub(crate) last_checkout_us: Option<i64>,
    pub(crate) last_open_us: Option<i64>,
    pub(crate) last_click_us: Option<i64>,
}

/// The CSV files DuckDB reads (one organisation, so no `org_id`).
pub(crate) struct CsvFiles {
    events: std::io::BufWriter<std::fs::File>,
    cluster_events: std::io::BufWriter<std::fs::File>,
    orders: std::io::BufWriter<std::fs::File>,
    order_lines: std::io::BufWriter<std::fs::File>,
    profiles: std::io::BufWriter<std::fs::File>,
    profile_tags: std::io::BufWriter<std::fs::File>,
}

fn csv_text(out: &mut impl Write, v: &str) -> std::io::Result<()> {
    out.write_all(b"\"")?;
    out.write_all(v.replace('"', "\"\"").as_bytes())?;
    out.write_all(b"\"")
}

impl CsvFiles {
    pub(crate) fn create(dir: &std::path::Path) -> std::io::Result<Self> {
        let open = |name: &str, header: &str| -> std::io::Result<_> {
            let mut f = std::io::BufWriter::with_capacity(
                1 << 20,
                std::fs::File::create(dir.join(format!("{name}.csv")))?,
            );
            writeln!(f, "{header}")?;
            Ok(f)
        };
        Ok(CsvFiles {
            events: open("events", "seq,type,event,timestamp_us,erased_at_us,payload")?,
            cluster_events: open("cluster_events", "seq,profile_id")?,
            orders: open(
                "orders",
                "profile_id,purchased,purchased_at_us,net_total_e4",
            )?,
            order_lines: open(
                "order_lines",
                "profile_id,product_id,sku,category,purchased_at_us",
            )?,
            profiles: open("profiles", "profile_id,email,last_seen_us,doc")?,
            profile_tags: open("profile_tags", "tag,profile_id")?,
        })
    }

    pub(crate) fn finish(mut self) -> std::io::Result<()> {
        for f in [
            &mut self.events,
            &mut self.cluster_events,
            &mut self.orders,
            &mut self.order_lines,
            &mut self.profiles,
            &mut self.profile_tags,
        ] {
            f.flush()?;
        }
        Ok(())
    }
}

/// Where the rows go: the database (through the loader) and, optionally,
/// the CSV files.
pub(crate) struct Sink {
    pub(crate) loader: BulkLoader,
    pub(crate) org: String,
    pub(crate) source: String,
    pub(crate) csv: Option<CsvFiles>,
}

/// Rows kept until a batch is written.
#[derive(Default)]
struct Rows {
    events: Vec<Vec<Cell>>,
    cluster_events: Vec<Vec<Cell>>,
    orders: Vec<Vec<Cell>>,
    order_lines: Vec<Vec<Cell>>,
}

const EVENT_COLUMNS: [&str; 12] = [
    "seq",
    "org_id",
    "source_id",
    "message_id",
    "type",
    "event",
    "user_id",
    "email",
    "timestamp_us",
    "received_at_us",
    "payload",
    "notes",
];
const ORDER_COLUMNS: [&str; 14] = [
    "org_id",
    "order_key",
    "store",
    "order_id",
    "profile_id",
    "cluster_id",
    "status",
    "currency",
    "total",
    "created_at_us",
    "doc",
    "purchased",
    "purchased_at_us",
    "net_total_e4",
];
const LINE_COLUMNS: [&str; 8] = [
    "org_id",
    "order_key",
    "line_no",
    "profile_id",
    "product_id",
    "sku",
    "category",
    "purchased_at_us",
];

/// The cluster of person `p` (one per person: nobody shares an identity).
fn cluster_of(p: u32) -> String {
    format!("clu_bench{p}")
}

impl Rows {
    fn len(&self) -> usize {
        self.events.len() + self.cluster_events.len() + self.orders.len() + self.order_lines.len()
    }
}

/// Counts of what was written.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Written {
    pub(crate) events: u64,
    pub(crate) profiles: u64,
    pub(crate) orders: u64,
    pub(crate) order_lines: u64,
    pub(crate) tags: u64,
}

/// Generates the whole store into `sink`.
pub(crate) async fn generate(
    sink: &mut Sink,
    seed: u64,
    profiles: u32,
    events: u64,
) -> anyhow::Result<Written> {
    let mut generator = Generator::new(seed, profiles, events);
    let mut state: Vec<Option<ProfileState>> = (0..profiles).map(|_| None).collect();
    let mut rows = Rows::default();
    let mut written = Written::default();
    while let Some(day) = generator.next_day() {
        for e in day {
            add_event(sink, seed, &e, &mut state, &mut rows, &mut written)?;
        }
        if rows.len() >= 60_000 {
            flush(sink, &mut rows).await?;
        }
    }
    flush(sink, &mut rows).await?;
    write_profiles(sink, seed, &state, &mut written).await?;
    Ok(written)
}

fn add_event(
    sink: &mut Sink,
    seed: u64,
    e: &GenEvent,
    state: &mut [Option<ProfileState>],
    rows: &mut Rows,
    written: &mut Written,
) -> anyhow::Result<()> {
    let mut message = e.message(seed);
    message["receivedAt"] = json!(rfc3339(e.at_us));
    let slot = &mut state[e.person as usize];
    if slot.is_none() {
        // The person's first event names their profile, as the fold does.
        let log = LogEvent {
            seq: e.seq,
            source_id: sink.source.clone(),
            message_id: e.message_id(),
            message_type: "identify".into(),
            timestamp_us: e.at_us,
            message: message.clone(),
        };
        let strongest = interpret(&log)
            .identities
            .into_iter()
            .min()
            .ok_or_else(|| anyhow::anyhow!("an identify without identities"))?;
        *slot = Some(ProfileState {
            id: profile_id(&log.key(), &strongest),
            first_seen_us: e.at_us,
            last_seen_us: e.at_us,
            orders: 0,
            spent_cents: 0,
            first_order_us: None,
            last_order_us: None,
            last_cart_us: None,
            last_checkout_us: None,
            last_open_us: None,
            last_click_us: None,
        });
    }
    let Some(p) = slot.as_mut() else {
        anyhow::bail!("no profile for person {}", e.person)
    };
    p.last_seen_us = p.last_seen_us.max(e.at_us);
    p.first_seen_us = p.first_seen_us.min(e.at_us);
    match &e.kind {
        Kind::Added { .. } => p.last_cart_us = Some(e.at_us),
        Kind::Checkout { .. } => p.last_checkout_us = Some(e.at_us),
        Kind::Email {
            event: "Email Opened",
            ..
        } => p.last_open_us = Some(e.at_us),
        Kind::Email {
            event: "Email Link Clicked",
            ..
        } => p.last_click_us = Some(e.at_us),
        Kind::Order { number, products } => {
            let total = GenEvent::total_cents(products);
            p.orders += 1;
            p.spent_cents += total;
            p.first_order_us.get_or_insert(e.at_us);
            p.last_order_us = Some(e.at_us);
            let key = format!("{}/{number}", sink.source);
            let total_text = rust_decimal::Decimal::new(total, 2).normalize().to_string();
            let doc = json!({"key": key, "store": sink.source, "order_id": number.to_string(), "profile_id": p.id,
                "status": "completed", "currency": "EUR", "total": {"amount": total_text, "currency": "EUR"},
                "line_items": products.iter().map(|x| json!({"product_id": x.to_string(), "sku": format!("SKU-{x}"),
                    "category": category_of(*x), "quantity": 1, "price": money(price_cents(*x))})).collect::<Vec<_>>(),
                "paid": true, "created_at": rfc3339(e.at_us), "paid_at": rfc3339(e.at_us)});
            rows.orders.push(vec![
                sink.org.as_str().into(),
                key.clone().into(),
                sink.source.as_str().into(),
                number.to_string().into(),
                p.id.as_str().into(),
                cluster_of(e.person).into(),
                "completed".into(),
                "EUR".into(),
                total_text.into(),
                e.at_us.into(),
                doc.to_string().into(),
                1i64.into(),
                e.at_us.into(),
                (total * 100).into(),
            ]);
            written.orders += 1;
            if let Some(csv) = &mut sink.csv {
                writeln!(csv.orders, "{},1,{},{}", p.id, e.at_us, total * 100)?;
            }
            for (i, x) in products.iter().enumerate() {
                rows.order_lines.push(vec![
                    sink.org.as_str().into(),
                    key.as_str().into(),
                    (i as i64).into(),
                    p.id.as_str().into(),
                    x.to_string().into(),
                    format!("SKU-{x}").into(),
                    category_of(*x).into(),
                    e.at_us.into(),
                ]);
                written.order_lines += 1;
                if let Some(csv) = &mut sink.csv {
                    writeln!(
                        csv.order_lines,
                        "{},{x},SKU-{x},{},{}",
                        p.id,
                        category_of(*x),
                        e.at_us
                    )?;
                }
            }
        }
        _ => {}
    }
    let payload = message.to_string();
    let kind = if matches!(e.kind, Kind::Identify) {
        "identify"
    } else {
        "track"
    };
    let email = match &e.kind {
        Kind::Identify => person(seed, e.person).email,
        _ => None,
    };
    if let Some(csv) = &mut sink.csv {
        write!(
            csv.events,
            "{},{kind},{},{},,",
            e.seq,
            e.event_name().unwrap_or(""),
            e.at_us
        )?;
        csv_text(&mut csv.events, &payload)?;
        writeln!(csv.events)?;
        writeln!(csv.cluster_events, "{},{}", e.seq, p.id)?;
    }
    rows.cluster_events.push(vec![
        sink.org.as_str().into(),
        e.seq.into(),
        cluster_of(e.person).into(),
        p.id.as_str().into(),
    ]);
    rows.events.push(vec![
        e.seq.into(),
        sink.org.as_str().into(),
        sink.source.as_str().into(),
        e.message_id().into(),
        kind.into(),
        e.event_name().into(),
        format!("u{}", e.person).into(),
        email.into(),
        e.at_us.into(),
        e.at_us.into(),
        payload.into(),
        Cell::Null,
    ]);
    written.events += 1;
    Ok(())
}

async fn flush(sink: &Sink, rows: &mut Rows) -> anyhow::Result<()> {
    let r = std::mem::take(rows);
    sink.loader
        .insert("events", &EVENT_COLUMNS, r.events)
        .await?;
    sink.loader
        .insert(
            "cluster_events",
            &["org_id", "seq", "cluster_id", "profile_id"],
            r.cluster_events,
        )
        .await?;
    sink.loader
        .insert("orders", &ORDER_COLUMNS, r.orders)
        .await?;
    sink.loader
        .insert("order_lines", &LINE_COLUMNS, r.order_lines)
        .await?;
    Ok(())
}

/// The profile document as the projector writes it (`ProfileView`).
fn profile_doc(seed: u64, person_no: u32, p: &ProfileState, tags: &[&str]) -> Value {
    let who = person(seed, person_no);
    let user = format!("u{person_no}");
    let mut traits = serde_json::Map::new();
    let mut sources = serde_json::Map::new();
    let source = json!({"updated_at": rfc3339(p.first_seen_us), "source_id": "src_bench", "message_id": "bench"});
    if let Some(e) = &who.email {
        traits.insert("email".into(), json!(e));
        sources.insert("email".into(), source.clone());
    }
    if let Some(c) = who.country {
        traits.insert("country".into(), json!(c));
        sources.insert("country".into(), source.clone());
    }
    traits.insert("first_name".into(), json!(who.first_name));
    sources.insert("first_name".into(), source);
    let mut identities = vec![json!({"kind": "user_id", "value": user})];
    if let Some(e) = &who.email {
        identities.insert(0, json!({"kind": "email", "value": e}));
    }
    let spent = rust_decimal::Decimal::new(p.spent_cents, 2)
        .normalize()
        .to_string();
    let average = if p.orders > 0 {
        (rust_decimal::Decimal::new(p.spent_cents, 2) / rust_decimal::Decimal::from(p.orders))
            .round_dp(2)
            .normalize()
            .to_string()
    } else {
        "0".into()
    };
    json!({
        "id": p.id, "user_id": user, "email": who.email, "identities": identities,
        "traits": traits, "trait_sources": sources, "tags": tags,
        "metrics": {
            "order_count": p.orders,
            "total_spent": if p.orders > 0 { json!([{"amount": spent, "currency": "EUR"}]) } else { json!([]) },
            "average_order_value": if p.orders > 0 { json!([{"amount": average, "currency": "EUR"}]) } else { json!([]) },
            "first_order_at": p.first_order_us.map(rfc3339), "last_order_at": p.last_order_us.map(rfc3339),
            "first_seen_at": rfc3339(p.first_seen_us), "last_seen_at": rfc3339(p.last_seen_us),
            "last_email_open_at": p.last_open_us.map(rfc3339), "last_email_click_at": p.last_click_us.map(rfc3339),
        },
        "cart": null, "checkout": null, "merged_from": [],
    })
}

/// The tags the fold leaves on a profile: a cart or checkout event after
/// the last order (which clears both), and the merchant's `vip`.
pub(crate) fn tags_of(seed: u64, person_no: u32, p: &ProfileState) -> Vec<&'static str> {
    let after_order = |t: Option<i64>| t.is_some_and(|t| p.last_order_us.is_none_or(|o| t > o));
    let mut tags = Vec::new();
    if after_order(p.last_cart_us) {
        tags.push("ecommerce.in_cart");
    }
    if after_order(p.last_checkout_us) {
        tags.push("ecommerce.in_checkout");
    }
    if person(seed, person_no).vip {
        tags.push("vip");
    }
    tags.sort_unstable();
    tags
}

async fn write_profiles(
    sink: &mut Sink,
    seed: u64,
    state: &[Option<ProfileState>],
    written: &mut Written,
) -> anyhow::Result<()> {
    let mut profiles = Vec::new();
    let mut tag_rows = Vec::new();
    for (n, p) in state.iter().enumerate() {
        let Some(p) = p else { continue };
        let n = n as u32;
        let tags = tags_of(seed, n, p);
        let who = person(seed, n);
        let doc = profile_doc(seed, n, p, &tags).to_string();
        for tag in &tags {
            tag_rows.push(vec![
                sink.org.as_str().into(),
                (*tag).into(),
                p.id.as_str().into(),
            ]);
            if let Some(csv) = &mut sink.csv {
                writeln!(csv.profile_tags, "{tag},{}", p.id)?;
            }
        }
        written.tags += tags.len() as u64;
        if let Some(csv) = &mut sink.csv {
            write!(
                csv.profiles,
                "{},{},{},",
                p.id,
                who.email.as_deref().unwrap_or(""),
                p.last_seen_us
            )?;
            csv_text(&mut csv.profiles, &doc)?;
            writeln!(csv.profiles)?;
        }
        profiles.push(vec![
            sink.org.as_str().into(),
            p.id.as_str().into(),
            cluster_of(n).into(),
            format!("u{n}").into(),
            who.email.into(),
            p.first_seen_us.into(),
            p.last_seen_us.into(),
            p.orders.into(),
            p.last_order_us.into(),
            0i64.into(),
            doc.into(),
        ]);
        written.profiles += 1;
        if profiles.len() >= 20_000 {
            insert_profiles(sink, std::mem::take(&mut profiles)).await?;
            sink.loader
                .insert(
                    "profile_tags",
                    &["org_id", "tag", "profile_id"],
                    std::mem::take(&mut tag_rows),
                )
                .await?;
        }
    }
    insert_profiles(sink, profiles).await?;
    sink.loader
        .insert("profile_tags", &["org_id", "tag", "profile_id"], tag_rows)
        .await?;
    Ok(())
}

async fn insert_profiles(sink: &Sink, rows: Vec<Vec<Cell>>) -> anyhow::Result<()> {
    sink.loader
        .insert(
            "profiles",
            &[
                "org_id",
                "profile_id",
                "cluster_id",
                "user_id",
                "email",
                "first_seen_us",
                "last_seen_us",
                "order_count",
                "last_order_us",
                "previously_erased",
                "doc",
            ],
            rows,
        )
        .await?;
    Ok(())
}
