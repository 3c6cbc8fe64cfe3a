#include "core/nexmark.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace keyflow {

namespace {

// Shape of the sequence (the Nexmark proportions): per block of 50 events, 1 person at
// position 0, 3 auctions at 1..3, 46 bids at 4..49.
constexpr uint64_t block_size = 50;
constexpr uint64_t auctions_per_block = 3;
constexpr int64_t first_person_id = 1000;
constexpr int64_t first_auction_id = 1000;
constexpr int64_t first_category_id = 10;
constexpr uint64_t categories = 5;
constexpr int64_t active_people = 1000;     // bidders and sellers come from the newest ones
constexpr int64_t person_id_lead = 10;      // ... or a few not yet registered
constexpr int64_t in_flight_auctions = 100; // bids go to the newest auctions
constexpr int64_t auction_id_lead = 10;     // ... or a few not yet opened
constexpr uint64_t hot_auction_ratio = 2;   // (ratio-1)/ratio of bids go to the hot auction
constexpr uint64_t hot_bidder_ratio = 4;    // (ratio-1)/ratio of bids come from the hot bidder
constexpr uint64_t hot_seller_ratio = 4;    // (ratio-1)/ratio of auctions by the hot seller
constexpr int64_t hot_group = 100;          // the hot id changes every 100 ids
constexpr size_t person_bytes = 200;        // average serialized sizes (Event wrapper incl.)
constexpr size_t auction_bytes = 500;
constexpr size_t bid_bytes = 100;
constexpr int price_buckets = 600; // log-spaced buckets of 10^(1/100) between 100 and 10^8
constexpr size_t pool_size = 16384;

constexpr std::array<std::string_view, 16> first_names = {
    "Ada", "Bruno", "Chen", "Dalia", "Emil",  "Fatima", "Goran", "Hana",
    "Ivo", "Jana",  "Kofi", "Lena",  "Mateo", "Nadia",  "Oskar", "Priya"};
constexpr std::array<std::string_view, 16> last_names = {
    "Adler", "Berg",   "Castro", "Dimitrov",  "Eriksen", "Fischer", "Garcia", "Horvat",
    "Ito",   "Jensen", "Kaya",   "Lindqvist", "Mensah",  "Nowak",   "Okoro",  "Petrova"};
constexpr std::array<std::string_view, 12> cities = {"Albany", "Boulder", "Chicago", "Dayton",
                                                     "Eugene", "Fresno",  "Girard",  "Helena",
                                                     "Ithaca", "Juneau",  "Keene",   "Lincoln"};
constexpr std::array<std::string_view, 8> states = {"NY", "CO", "IL", "OH", "OR", "CA", "MT", "AK"};
constexpr std::array<std::string_view, 4> channels = {"web", "mobile", "partner", "email"};
constexpr std::string_view url_prefix = "https://auction.example.com/item/";

/// splitmix64's output function: a bijective 64-bit mix.
constexpr uint64_t mix64(uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// Base-0 id of the newest person at event n (the block's person comes first).
constexpr int64_t last_person(uint64_t n) noexcept {
  return static_cast<int64_t>(n / block_size);
}

/// Base-0 id of the newest auction at event n (-1 before the first one).
constexpr int64_t last_auction(uint64_t n) noexcept {
  const auto epoch = static_cast<int64_t>(n / block_size);
  const auto offset = static_cast<int64_t>(n % block_size);
  const auto per_block = static_cast<int64_t>(auctions_per_block);
  if (offset == 0)
    return epoch * per_block - 1;
  return epoch * per_block + std::min<int64_t>(offset, per_block) - 1;
}

/// Decimal digits of v >= 0 written into [p, p+20); returns the end.
char* put_int(char* p, int64_t v) noexcept {
  return std::to_chars(p, p + 20, v).ptr;
}

} // namespace

/// Per-event random stream: splitmix64 started at a hash of (seed, event number).
struct nexmark_generator::event_rng {
  uint64_t state;

  /// Next 64 random bits.
  uint64_t next() noexcept { return mix64(state += 0x9e3779b97f4a7c15ULL); }

  /// Uniform integer in [0, n), n > 0.
  uint64_t below(uint64_t n) noexcept {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }

  /// True with probability (ratio - 1) / ratio.
  bool hot(uint64_t ratio) noexcept { return below(ratio) > 0; }
};

std::string_view nexmark_kind_name(nexmark_kind kind) noexcept {
  switch (kind) {
  case nexmark_kind::person:
    return "person";
  case nexmark_kind::auction:
    return "auction";
  case nexmark_kind::bid:
    return "bid";
  }
  return "unknown";
}

nexmark_kind nexmark_kind_of(uint64_t n) noexcept {
  const uint64_t offset = n % block_size;
  if (offset == 0)
    return nexmark_kind::person;
  return offset <= auctions_per_block ? nexmark_kind::auction : nexmark_kind::bid;
}

nexmark_generator::nexmark_generator(const nexmark_options& opts)
    : opts_(opts), seed_hash_(mix64(opts.seed ^ 0x6a09e667f3bcc909ULL)), mean_auction_ms_(1),
      next_n_(opts.instance) {
  if (opts_.events_per_second == 0)
    throw std::invalid_argument("nexmark: events_per_second must be > 0");
  // An auction lasts until about in_flight_auctions newer ones have opened.
  mean_auction_ms_ = std::max<int64_t>(
      1, in_flight_auctions * static_cast<int64_t>(block_size) * 1000 /
             (static_cast<int64_t>(auctions_per_block) * opts_.events_per_second));
  if (opts_.max_delay_ms < 0)
    throw std::invalid_argument("nexmark: max_delay_ms must be >= 0");
  if (opts_.instances == 0 || opts_.instance >= opts_.instances)
    throw std::invalid_argument("nexmark: instance must be < instances");
  event_rng r{seed_hash_ ^ 0x3c6ef372fe94f82bULL};
  pool_.resize(pool_size);
  for (auto& c : pool_)
    c = static_cast<char>('a' + r.below(26));
  // Integer bucket bounds, so prices do not depend on the last bits of the libm in use.
  price_steps_.resize(price_buckets + 1);
  for (int k = 0; k <= price_buckets; ++k)
    price_steps_[k] = std::llround(100.0 * std::pow(10.0, k / 100.0));
  value_.reserve(1024);
}

nexmark_generator::~nexmark_generator() = default;

uint64_t nexmark_generator::remaining() const noexcept {
  if (next_n_ >= opts_.events)
    return 0;
  return (opts_.events - next_n_ + opts_.instances - 1) / opts_.instances;
}

std::string_view nexmark_generator::random_text(event_rng& r, size_t min_len,
                                                size_t max_len) const {
  const size_t len = min_len + r.below(max_len - min_len + 1);
  const size_t offset = r.below(pool_.size() - len + 1);
  return std::string_view(pool_).substr(offset, len);
}

std::string_view nexmark_generator::pad(event_rng& r, size_t current, size_t average) const {
  if (current >= average)
    return {};
  const size_t want = average - current;
  const size_t delta = want / 5;
  return random_text(r, want - delta, std::min(want + delta, pool_.size()));
}

int64_t nexmark_generator::price(event_rng& r) const {
  const auto k = r.below(price_buckets);
  const int64_t lo = price_steps_[k];
  return lo + static_cast<int64_t>(r.below(static_cast<uint64_t>(price_steps_[k + 1] - lo)));
}

int64_t nexmark_generator::recent_person(event_rng& r, uint64_t n) const {
  const int64_t people = last_person(n) + 1;
  const int64_t active = std::min(people, active_people);
  return people - active +
         static_cast<int64_t>(r.below(static_cast<uint64_t>(active + person_id_lead)));
}

void nexmark_generator::fill_person(uint64_t n, int64_t time, event_rng& r, nexmark::Person& p) {
  p.set_id(first_person_id + last_person(n));
  const auto first = first_names[r.below(first_names.size())];
  const auto last = last_names[r.below(last_names.size())];
  p.mutable_name()->assign(first).append(" ").append(last);
  p.mutable_email_address()
      ->assign(random_text(r, 4, 9))
      .append("@")
      .append(random_text(r, 4, 8))
      .append(".com");
  char card[19];
  for (int group = 0; group < 4; ++group) {
    auto digits = r.below(10000);
    for (int i = 3; i >= 0; --i, digits /= 10)
      card[group * 5 + i] = static_cast<char>('0' + digits % 10);
    if (group < 3)
      card[group * 5 + 4] = ' ';
  }
  p.set_credit_card(card, sizeof(card));
  const auto city = cities[r.below(cities.size())];
  p.set_city(city.data(), city.size());
  const auto state = states[r.below(states.size())];
  p.set_state(state.data(), state.size());
  p.set_date_time(time);
  p.clear_extra();
}

void nexmark_generator::fill_auction(uint64_t n, int64_t time, event_rng& r, nexmark::Auction& a) {
  a.set_id(first_auction_id + last_auction(n));
  const auto item = random_text(r, 8, 20);
  a.set_item_name(item.data(), item.size());
  const auto description = random_text(r, 30, 90);
  a.set_description(description.data(), description.size());
  const int64_t initial = price(r);
  a.set_initial_bid(initial);
  a.set_reserve(initial + price(r));
  a.set_date_time(time);
  a.set_expires(time + 1 +
                static_cast<int64_t>(r.below(2 * static_cast<uint64_t>(mean_auction_ms_))));
  const int64_t seller =
      r.hot(hot_seller_ratio) ? last_person(n) / hot_group * hot_group : recent_person(r, n);
  a.set_seller(first_person_id + seller);
  a.set_category(first_category_id + static_cast<int64_t>(r.below(categories)));
  a.clear_extra();
}

void nexmark_generator::fill_bid(uint64_t n, int64_t time, event_rng& r, nexmark::Bid& b) {
  const int64_t newest = last_auction(n);
  int64_t auction = newest / hot_group * hot_group;
  if (!r.hot(hot_auction_ratio)) {
    const int64_t oldest = std::max<int64_t>(newest - in_flight_auctions, 0);
    auction = oldest + static_cast<int64_t>(
                           r.below(static_cast<uint64_t>(newest - oldest + 1 + auction_id_lead)));
  }
  auction += first_auction_id;
  b.set_auction(auction);
  const int64_t bidder =
      r.hot(hot_bidder_ratio) ? last_person(n) / hot_group * hot_group + 1 : recent_person(r, n);
  b.set_bidder(first_person_id + bidder);
  b.set_price(price(r));
  const auto channel = channels[r.below(channels.size())];
  b.set_channel(channel.data(), channel.size());
  char digits[24];
  const size_t digits_len = static_cast<size_t>(put_int(digits, auction) - digits);
  b.mutable_url()
      ->assign(url_prefix)
      .append(digits, digits_len)
      .append("?channel=")
      .append(channel)
      .append("&ref=")
      .append(random_text(r, 6, 6));
  b.set_date_time(time);
  b.clear_extra();
}

void nexmark_generator::park(nexmark::Event& e) {
  switch (e.kind_case()) {
  case nexmark::Event::kPerson:
    spare_person_.reset(e.release_person());
    break;
  case nexmark::Event::kAuction:
    spare_auction_.reset(e.release_auction());
    break;
  case nexmark::Event::kBid:
    spare_bid_.reset(e.release_bid());
    break;
  case nexmark::Event::KIND_NOT_SET:
    break;
  }
}

nexmark::Person& nexmark_generator::person_slot(nexmark::Event& e) {
  if (e.kind_case() != nexmark::Event::kPerson) {
    park(e);
    if (spare_person_)
      e.set_allocated_person(spare_person_.release());
  }
  return *e.mutable_person();
}

nexmark::Auction& nexmark_generator::auction_slot(nexmark::Event& e) {
  if (e.kind_case() != nexmark::Event::kAuction) {
    park(e);
    if (spare_auction_)
      e.set_allocated_auction(spare_auction_.release());
  }
  return *e.mutable_auction();
}

nexmark::Bid& nexmark_generator::bid_slot(nexmark::Event& e) {
  if (e.kind_case() != nexmark::Event::kBid) {
    park(e);
    if (spare_bid_)
      e.set_allocated_bid(spare_bid_.release());
  }
  return *e.mutable_bid();
}

std::string_view nexmark_generator::generate(uint64_t n, nexmark::Event& out) {
  event_rng r{seed_hash_ ^ mix64(n)};
  const auto since_base = static_cast<unsigned __int128>(n) * 1000 / opts_.events_per_second;
  int64_t time = opts_.base_time_ms + static_cast<int64_t>(since_base);
  if (opts_.max_delay_ms > 0)
    time -= static_cast<int64_t>(r.below(static_cast<uint64_t>(opts_.max_delay_ms) + 1));
  out.set_event_time_ms(time);
  int64_t id = 0;
  // Padding is sized from the serialized size without it; +2..3 for its tag and length.
  switch (nexmark_kind_of(n)) {
  case nexmark_kind::person: {
    auto& p = person_slot(out);
    fill_person(n, time, r, p);
    const auto extra = pad(r, out.ByteSizeLong() + 3, person_bytes);
    p.set_extra(extra.data(), extra.size());
    id = p.id();
    break;
  }
  case nexmark_kind::auction: {
    auto& a = auction_slot(out);
    fill_auction(n, time, r, a);
    const auto extra = pad(r, out.ByteSizeLong() + 3, auction_bytes);
    a.set_extra(extra.data(), extra.size());
    id = a.id();
    break;
  }
  case nexmark_kind::bid: {
    auto& b = bid_slot(out);
    fill_bid(n, time, r, b);
    const auto extra = pad(r, out.ByteSizeLong() + 2, bid_bytes);
    b.set_extra(extra.data(), extra.size());
    id = b.auction();
    break;
  }
  }
  const char* end = put_int(generate_key_.data(), id);
  return {generate_key_.data(), static_cast<size_t>(end - generate_key_.data())};
}

bool nexmark_generator::next() {
  if (next_n_ >= opts_.events)
    return false;
  number_ = next_n_;
  next_n_ = opts_.events - next_n_ > opts_.instances ? next_n_ + opts_.instances : opts_.events;
  const auto key = generate(number_, event_);
  std::copy(key.begin(), key.end(), key_buf_.begin());
  key_ = std::string_view(key_buf_.data(), key.size());
  value_.resize(event_.ByteSizeLong());
  event_.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(value_.data()));
  return true;
}

} // namespace keyflow
