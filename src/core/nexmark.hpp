#pragma once
/// \file
/// Deterministic Nexmark event generator: people, auctions and bids of an online auction
/// site (`config/proto/nexmark.proto`), for the Nexmark benchmark queries.
///
/// Event number n = 0, 1, 2, ... is a pure function of (options, n): in every block of 50
/// events, position 0 is a Person, 1..3 are Auctions and 4..49 are Bids. Person and auction
/// ids start at 1000 and grow with n. Half of the bids go to the current hot auction, three
/// quarters to the current hot bidder; the others pick among the ~1000 most recent people and
/// ~100 most recent auctions (a few ids ahead of the newest, as in Nexmark). Prices are
/// log-uniform integer cents in [100, 10^8). Event time is
/// `base_time_ms + n * 1000 / events_per_second`, minus a uniform delay in [0, max_delay_ms].
/// Several generators with the same options and instance = 0..k-1 together emit every event
/// once (instance i emits n = i, i + k, i + 2k, ...).

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proto/nexmark.pb.h"

namespace keyflow {

/// Settings of a Nexmark generator.
struct nexmark_options {
  uint64_t events = 1'000'000;          ///< events in the whole sequence (all instances); 1M
  uint64_t seed = 42;                   ///< random seed; 42
  int64_t base_time_ms = 1767225600000; ///< event time of event 0; 2026-01-01T00:00:00Z
  uint32_t events_per_second = 10'000;  ///< event-time rate (not a send rate), > 0; 10000
  int64_t max_delay_ms = 0;             ///< bounded disorder: time -= uniform [0, this]; 0
  uint32_t instance = 0;                ///< this generator's share, < instances; 0
  uint32_t instances = 1;               ///< generators splitting the sequence, >= 1; 1
};

/// What a Nexmark event is.
enum class nexmark_kind : uint8_t { person, auction, bid };

/// "person", "auction" or "bid".
std::string_view nexmark_kind_name(nexmark_kind kind) noexcept;

/// Kind of event number `n` (position within its block of 50).
nexmark_kind nexmark_kind_of(uint64_t n) noexcept;

/// Generates Nexmark events as `keyflow::nexmark::Event` messages and as Kafka records
/// (serialized value + decimal id key). Cheap per event: the message, its sub-messages and
/// the buffers are reused, so steady-state generation does not allocate.
class nexmark_generator {
public:
  /// A generator for `opts`; throws std::invalid_argument for events_per_second = 0,
  /// max_delay_ms < 0, instances = 0 or instance >= instances.
  explicit nexmark_generator(const nexmark_options& opts);
  ~nexmark_generator();
  nexmark_generator(const nexmark_generator&) = delete;
  nexmark_generator& operator=(const nexmark_generator&) = delete;

  /// Fills `out` with event number `n`, whatever was generated before; event_time_ms and
  /// the inner date_time are equal. Returns the Kafka key: the event's id in decimal (a
  /// bid's auction), valid until the next call.
  std::string_view generate(uint64_t n, nexmark::Event& out);

  /// Generates this instance's next event into event(), key() and value(); false (and
  /// nothing changed) once the instance has emitted all its events.
  bool next();

  /// The event of the last next().
  const nexmark::Event& event() const noexcept { return event_; }
  /// Kafka key of the last next(): the event's id in decimal (for a bid, its auction id).
  std::string_view key() const noexcept { return key_; }
  /// Serialized event of the last next().
  std::string_view value() const noexcept { return value_; }
  /// Event number of the last next().
  uint64_t number() const noexcept { return number_; }
  /// Events this instance has still to emit.
  uint64_t remaining() const noexcept;
  /// The options this generator was made with.
  const nexmark_options& options() const noexcept { return opts_; }

private:
  struct event_rng;
  void fill_person(uint64_t n, int64_t time, event_rng& r, nexmark::Person& p);
  void fill_auction(uint64_t n, int64_t time, event_rng& r, nexmark::Auction& a);
  void fill_bid(uint64_t n, int64_t time, event_rng& r, nexmark::Bid& b);
  std::string_view pad(event_rng& r, size_t current, size_t average) const;
  std::string_view random_text(event_rng& r, size_t min_len, size_t max_len) const;
  int64_t price(event_rng& r) const;
  int64_t recent_person(event_rng& r, uint64_t n) const;
  void park(nexmark::Event& e);
  nexmark::Person& person_slot(nexmark::Event& e);
  nexmark::Auction& auction_slot(nexmark::Event& e);
  nexmark::Bid& bid_slot(nexmark::Event& e);

  nexmark_options opts_;
  uint64_t seed_hash_;
  int64_t mean_auction_ms_;          // mean auction duration: ~100 auctions later
  uint64_t next_n_;                  // next event number this instance emits
  uint64_t number_ = 0;              // event number of the last next()
  std::string pool_;                 // random text that strings and padding are cut from
  std::vector<int64_t> price_steps_; // log-spaced price bucket bounds, cents
  nexmark::Event event_;
  std::unique_ptr<nexmark::Person> spare_person_; // sub-messages kept for reuse
  std::unique_ptr<nexmark::Auction> spare_auction_;
  std::unique_ptr<nexmark::Bid> spare_bid_;
  std::array<char, 24> generate_key_{}; // key returned by generate()
  std::array<char, 24> key_buf_{};      // key of the last next()
  std::string_view key_;
  std::string value_;
};

} // namespace keyflow
