// RedisTier: see redis_tier.h for the layout and the generations. Its own
// thread runs the timers (lease renewal, waiters' polls, the generation
// check, the fleet counters); Redis replies arrive on the client's thread.
// Only steady_timer is instantiated here: the sockets live in the client.

#include "llmcache/net/redis_tier.h"

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include "llmcache/clock.h"
#include "tier_format.h"

namespace llmcache::net {
namespace {

namespace asio = boost::asio;
using Reply = RedisReply;

using tier_internal::GetLe64;
using tier_internal::kAddScript;
using tier_internal::kAllModels;
using tier_internal::kEpochField;
using tier_internal::kFlushScript;
using tier_internal::kHeaderSize;
using tier_internal::kMagic;
using tier_internal::kReleaseScript;
using tier_internal::kRenewScript;
using tier_internal::ParseU64;
using tier_internal::PutLe64;
using tier_internal::ReadGenerationsFile;
using tier_internal::WriteGenerationsFile;

int64_t NowMs() { return Clock::System()->NowMillis(); }

}  // namespace

class RedisTier::Impl : public std::enable_shared_from_this<Impl> {
 public:
  explicit Impl(RedisTierOptions options)
      : options_(std::move(options)),
        work_(asio::make_work_guard(ioc_)),
        rng_(std::random_device{}()),
        refusals_(options_.log, options_.redis.error_log_interval_ms) {}

  Status Start() {
    auto redis = RedisClient::Create(options_.redis);
    if (!redis.ok()) return redis.status();
    redis_ = std::move(*redis);
    SeedGenerations();
    flush_thread_ = std::thread([this] { FlushLoop(); });
    thread_ = std::thread([this] { ioc_.run(); });
    std::weak_ptr<Impl> weak = shared_from_this();
    redis_->Subscribe(
        Channel(),
        [weak](std::string_view message) {
          if (auto self = weak.lock()) self->OnFlushMessage(message);
        },
        [weak] {
          // (Re)subscribed: catch up on flushes missed meanwhile.
          if (auto self = weak.lock()) self->LoadGenerations(nullptr);
        });
    // Read the generations once before serving (bounded wait).
    auto done = std::make_shared<std::promise<void>>();
    std::future<void> loaded = done->get_future();
    LoadGenerations([done] { done->set_value(); });
    loaded.wait_for(std::chrono::milliseconds(
        std::max<int64_t>(options_.redis.command_timeout_ms, 1) * 3 + 50));
    ScheduleGenerationCheck();
    ScheduleStatsFlush();
    ScheduleLeaseRenewal();
    return Status::Ok();
  }

  ~Impl() { Shutdown(); }

  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
      stopped_ = true;
    }
    work_.reset();
    ioc_.stop();
    if (tier_internal::JoinUnlessSelf(thread_)) AbandonWaits();
    {
      std::lock_guard<std::mutex> lock(flush_mu_);
      flush_stop_ = true;
    }
    flush_cv_.notify_all();
    tier_internal::JoinUnlessSelf(flush_thread_);
    // Leases of calls the stop dropped: released, so that other instances'
    // waiters go upstream now, not once the lease expires.
    std::map<std::string, std::string> held;
    {
      std::lock_guard<std::mutex> lock(mu_);
      held.swap(held_);
    }
    for (const auto& [lease, token] : held) {
      if (!redis_) break;
      (void)redis_->CommandSync(
          {"EVAL", std::string(kReleaseScript), "1", lease, token}, 3,
          options_.admin_timeout_ms);
    }
    if (redis_) redis_->Shutdown();
  }

  // ---- keys ----
  std::string EntryKey(std::string_view hex) const {
    return options_.prefix + "e:{" + std::string(hex) + "}";
  }
  std::string LeaseKey(std::string_view hex) const {
    return options_.prefix + "l:{" + std::string(hex) + "}";
  }
  std::string GenKey() const { return options_.prefix + "gen"; }
  std::string Channel() const { return options_.prefix + "flush"; }
  std::string StatsKey(std::string_view model) const {
    return options_.prefix + "stats:" + std::string(model);
  }
  std::string ModelsKey() const { return options_.prefix + "models"; }

  // ---- lookups ----
  void Get(const RequestKey& key, GetCallback done) {
    gets_.fetch_add(1, std::memory_order_relaxed);
    auto self = shared_from_this();
    redis_->Command({"GET", EntryKey(key.Hex())}, 1,
                    [self, done = std::move(done)](Result<Reply> r) {
                      done(self->OnGetReply(r));
                    });
  }

  // A GET's reply as a hit (entry), a miss (null) or an error.
  Result<std::shared_ptr<const Entry>> OnGetReply(const Result<Reply>& r) {
    if (!r.ok()) return r.status();  // counted by the client
    if (r->is_error()) {
      OnErrorReply("a read", r->str);
      return UnavailableError("redis: " + r->str);
    }
    if (r->is_nil() || r->type != Reply::Type::kString) {
      misses_.fetch_add(1, std::memory_order_relaxed);
      return std::shared_ptr<const Entry>();
    }
    auto entry = Decode(r->str);
    if (!entry) {
      misses_.fetch_add(1, std::memory_order_relaxed);
      return std::shared_ptr<const Entry>();
    }
    hits_.fetch_add(1, std::memory_order_relaxed);
    return entry;
  }

  // The entry of a stored value, or null when it is of an old generation,
  // expired or undecodable.
  std::shared_ptr<const Entry> Decode(std::string_view value) {
    Result<Entry> e = DecodeValue(value);
    if (!e.ok()) {
      if (e.status().code() == StatusCode::kNotFound) {
        stale_.fetch_add(1, std::memory_order_relaxed);
      } else if (e.status().code() == StatusCode::kDataLoss) {
        decode_errors_.fetch_add(1, std::memory_order_relaxed);
      }
      return nullptr;
    }
    if (e->meta.ExpiredAt(NowMs())) return nullptr;
    return std::make_shared<const Entry>(std::move(*e));
  }

  // A stored value: the entry; kNotFound when it is of an old generation
  // (invisible); kUnavailable before the generations were read (cannot
  // tell: fail safe); kDataLoss when it does not decode.
  Result<Entry> DecodeValue(std::string_view value) {
    if (value.size() < kHeaderSize ||
        std::memcmp(value.data(), kMagic, 4) != 0) {
      return DataLossError("not an llmcache shared-tier value");
    }
    Result<Entry> e = DecodeEntryValue(value.substr(kHeaderSize));
    if (!e.ok()) return e.status();
    std::lock_guard<std::mutex> lock(mu_);
    if (!gens_loaded_) {
      return UnavailableError("the shared tier's generations are not read yet");
    }
    if (GetLe64(value.data() + 4) < GenOf(kAllModels) ||
        GetLe64(value.data() + 12) < GenOf(BaseModel(e->meta.model))) {
      return NotFoundError("old generation");
    }
    return e;
  }

  void Put(const RequestKey& key, std::shared_ptr<const Entry> entry) {
    std::string value(kHeaderSize, '\0');
    std::memcpy(value.data(), kMagic, 4);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!gens_loaded_) {
        put_errors_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      PutLe64(GenOf(kAllModels), value.data() + 4);
      PutLe64(GenOf(key.base_model), value.data() + 12);
    }
    Result<std::string> encoded = EncodeEntryValue(*entry);
    if (!encoded.ok()) {
      put_errors_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    value += *encoded;
    std::vector<std::string> argv = {"SET", EntryKey(key.Hex()),
                                     std::move(value)};
    if (entry->meta.expires_ms != 0) {
      const int64_t px = entry->meta.expires_ms - NowMs();
      if (px <= 0) return;
      argv.push_back("PX");
      argv.push_back(std::to_string(px));
    }
    puts_.fetch_add(1, std::memory_order_relaxed);
    auto self = shared_from_this();
    redis_->Command(std::move(argv), 1, [self](Result<Reply> r) {
      if (!r.ok() || r->is_error()) self->put_errors_.fetch_add(1);
      if (r.ok()) self->writes_refused_.store(r->is_error());
      if (r.ok() && r->is_error()) self->OnErrorReply("a write", r->str);
    });
  }

  // A command refused with an error reply (OOM at maxmemory, a READONLY
  // replica...): an error, logged rate-limited (transport failures: client).
  void OnErrorReply(std::string_view what, const std::string& reply) try {
    reply_errors_.fetch_add(1, std::memory_order_relaxed);
    refusals_.Write("redis " + options_.redis.url.Redacted() +
                    ": the server refused " + std::string(what) + ": " + reply);
  } catch (...) {  // in the client's callback: nothing may escape
  }

  // ---- cross-instance single flight ----
  struct Wait {
    std::string entry_key, lease_key;
    int64_t deadline_ms = 0;
    int64_t interval_ms = 1;
    int slow_polls = 0;  // in a row
    std::function<void(Lead)> done;
  };

  void AcquireLead(const RequestKey& key, std::function<void(Lead)> done) {
    const std::string hex = key.Hex();
    std::string token = NewToken();
    auto self = shared_from_this();
    auto wait = std::make_shared<Wait>();
    wait->entry_key = EntryKey(hex);
    wait->lease_key = LeaseKey(hex);
    wait->deadline_ms = NowMs() + options_.lease_wait_ms;
    wait->interval_ms = std::max<int64_t>(1, options_.lease_poll_ms);
    wait->done = std::move(done);
    redis_->Command(
        {"SET", wait->lease_key, token, "NX", "PX",
         std::to_string(options_.lease_ms)},
        1, [self, wait, token](Result<Reply> r) {
          if (!r.ok() || r->is_error()) {
            return wait->done(Lead{LeadOutcome::kGoAlone, {}, nullptr});
          }
          if (r->type == Reply::Type::kStatus) {  // OK: ours
            self->leases_taken_.fetch_add(1, std::memory_order_relaxed);
            {
              std::lock_guard<std::mutex> lock(self->mu_);
              self->held_[wait->lease_key] = token;
            }
            return wait->done(Lead{LeadOutcome::kLeader, token, nullptr});
          }
          self->lease_waits_.fetch_add(1, std::memory_order_relaxed);
          self->SchedulePoll(wait);
        });
  }

  void SchedulePoll(std::shared_ptr<Wait> wait) {
    auto timer = std::make_shared<asio::steady_timer>(
        ioc_, std::chrono::milliseconds(wait->interval_ms));
    std::weak_ptr<Impl> weak = shared_from_this();
    {
      // Registered and armed under mu_: Shutdown either sees it (and
      // cancels it) or has already stopped, and the wait goes alone now.
      std::lock_guard<std::mutex> lock(mu_);
      if (!stopped_) {
        polls_.insert(timer);
        timer->async_wait([weak, timer, wait](boost::system::error_code ec) {
          auto self = weak.lock();
          if (self) {
            std::lock_guard<std::mutex> erase_lock(self->mu_);
            self->polls_.erase(timer);
          }
          if (ec || !self) {
            return wait->done(Lead{LeadOutcome::kGoAlone, {}, nullptr});
          }
          self->Poll(wait);
        });
        return;
      }
    }
    wait->done(Lead{LeadOutcome::kGoAlone, {}, nullptr});
  }

  // At shutdown, once the tier's thread has ended: the waits for another
  // instance's lead go alone now (a stopped io_context would never run
  // their timers: the requests would never be answered).
  void AbandonWaits() {
    std::set<std::shared_ptr<asio::steady_timer>> polls;
    {
      std::lock_guard<std::mutex> lock(mu_);
      polls.swap(polls_);
    }
    if (polls.empty()) return;
    for (const auto& t : polls) t->cancel();
    ioc_.restart();
    ioc_.poll();  // their handlers, here: kGoAlone
  }

  void Poll(std::shared_ptr<Wait> wait) {
    auto self = shared_from_this();
    redis_->Command(
        {"MGET", wait->entry_key, wait->lease_key}, 1,
        [self, wait](Result<Reply> r) {
          if (!r.ok() || r->is_error() || r->type != Reply::Type::kArray ||
              r->elements.size() != 2) {
            // A slow answer (a busy host) is no dead leader: poll again.
            if (!r.ok() && r.status().code() == StatusCode::kDeadlineExceeded &&
                ++wait->slow_polls <= 3 && NowMs() < wait->deadline_ms) {
              return self->SchedulePoll(wait);
            }
            return wait->done(Lead{LeadOutcome::kGoAlone, {}, nullptr});
          }
          wait->slow_polls = 0;
          const Reply& value = r->elements[0];
          const Reply& lease = r->elements[1];
          if (value.type == Reply::Type::kString) {
            if (auto e = self->Decode(value.str)) {
              self->lease_hits_.fetch_add(1, std::memory_order_relaxed);
              return wait->done(Lead{LeadOutcome::kHit, {}, std::move(e)});
            }
          }
          if (lease.is_nil()) {
            // The leader gave up (or died and its lease expired) without
            // a value: go upstream now.
            self->lease_released_empty_.fetch_add(1, std::memory_order_relaxed);
            return wait->done(Lead{LeadOutcome::kGoAlone, {}, nullptr});
          }
          if (NowMs() >= wait->deadline_ms) {
            self->lease_timeouts_.fetch_add(1, std::memory_order_relaxed);
            return wait->done(Lead{LeadOutcome::kGoAlone, {}, nullptr});
          }
          wait->interval_ms = std::min<int64_t>(wait->interval_ms * 2, 100);
          self->SchedulePoll(wait);
        });
  }

  void Release(const RequestKey& key, const std::string& token) {
    std::string lease = LeaseKey(key.Hex());
    {
      std::lock_guard<std::mutex> lock(mu_);
      held_.erase(lease);
    }
    redis_->Command({"EVAL", std::string(kReleaseScript), "1", lease, token}, 3,
                    [](Result<Reply>) {});
  }

  void ScheduleLeaseRenewal() {
    auto timer = std::make_shared<asio::steady_timer>(
        ioc_, std::chrono::milliseconds(
                  std::max<int64_t>(options_.lease_ms / 3, 10)));
    std::weak_ptr<Impl> weak = shared_from_this();
    timer->async_wait([weak, timer](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      std::map<std::string, std::string> held;
      {
        std::lock_guard<std::mutex> lock(self->mu_);
        held = self->held_;
      }
      for (const auto& [lease, token] : held) {
        self->redis_->Command({"EVAL", std::string(kRenewScript), "1", lease,
                               token, std::to_string(self->options_.lease_ms)},
                              3, [](Result<Reply>) {});
      }
      self->ScheduleLeaseRenewal();
    });
  }

  // ---- generations ----
  uint64_t GenOf(std::string_view model) const {  // mu_ held
    auto it = gens_.find(std::string(model));
    return it == gens_.end() ? 0 : it->second;
  }

  // Raises the known generation of `model`; true if it was raised. Calls the
  // flush listener for a raise learned from elsewhere (`remote`).
  // Before the first read, only generations seeded from the file (what the
  // local tiers were last consistent with) can be raised "remotely": those
  // raises are flushes missed while this instance was down. Listener calls
  // wait for the listener when it is not set yet.
  bool Raise(const std::string& model, uint64_t gen, bool remote) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      uint64_t& known = gens_[model];
      if (gen <= known) return false;
      known = gen;
      // Counted before any local flush for it (CachedClient's fills).
      flush_count_.fetch_add(1, std::memory_order_acq_rel);
      if (!remote || (!gens_loaded_ && !seeded_)) {
        SaveGenerationsLocked();
        return true;
      }
      if (!listener_) {
        pending_flushes_.push_back(model);
        return true;
      }
      // Queued under mu_, so that no save of the generations file can see
      // the new generation before the local flush ran (lock order: mu_,
      // then flush_mu_).
      // The local flush (a column family dropped and compacted: it can
      // take seconds) runs on the flush thread, never on the Redis I/O
      // thread, whose replies and deadlines must go on meanwhile.
      std::lock_guard<std::mutex> queue_lock(flush_mu_);
      flush_queue_.push_back(model);
    }
    flush_cv_.notify_one();
    return true;
  }

  // The flush thread: runs the listener for each flush learned from
  // elsewhere, in order, then saves the generations file (after the local
  // tiers were flushed: the file never claims a consistency they do not
  // have).
  void FlushLoop() {
    std::unique_lock<std::mutex> lock(flush_mu_);
    for (;;) {
      flush_cv_.wait(lock,
                     [this] { return flush_stop_ || !flush_queue_.empty(); });
      if (flush_stop_) return;
      const std::string model = std::move(flush_queue_.front());
      flush_queue_.pop_front();
      lock.unlock();
      std::function<void(std::string_view)> listener;
      {
        std::lock_guard<std::mutex> l(mu_);
        listener = listener_;
      }
      if (listener) listener(model == kAllModels ? std::string_view() : model);
      remote_flushes_.fetch_add(1, std::memory_order_relaxed);
      {
        std::lock_guard<std::mutex> l(mu_);
        SaveGenerationsLocked();
      }
      lock.lock();
    }
  }

  // The generations file (tier_format.h).
  void SeedGenerations() {
    if (options_.generations_file.empty()) return;
    std::lock_guard<std::mutex> lock(mu_);
    // First start: nothing to compare with.
    seeded_ = ReadGenerationsFile(options_.generations_file, &gens_, &epoch_);
    epoch_legacy_ = seeded_ && epoch_ == 0;
  }

  void SaveGenerationsLocked() {
    if (options_.generations_file.empty()) return;
    if (!pending_flushes_.empty()) return;  // not flushed locally yet
    {
      std::lock_guard<std::mutex> queue_lock(flush_mu_);
      if (!flush_queue_.empty()) return;  // the flush thread saves later
    }
    WriteGenerationsFile(options_.generations_file, gens_, epoch_);
  }

  // The epoch in Redis (tier_format.h). Another than the known one: Redis
  // restarted empty since, and every generation of the new epoch is a flush
  // not applied here: the known ones are forgotten (the raises that follow
  // flush those models). Not when none is known.
  void AdoptEpoch(uint64_t epoch) {
    std::lock_guard<std::mutex> lock(mu_);
    if (epoch == epoch_) return;
    if (epoch_ != 0 && !epoch_legacy_) gens_.clear();
    epoch_ = epoch;
    epoch_legacy_ = false;
  }

  std::string NewEpoch() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::to_string((rng_() >> 1) + 1);
  }

  void ResetGenerations() {
    std::lock_guard<std::mutex> lock(mu_);
    if (gens_.empty() && epoch_ == 0) return;  // nothing to forget or save
    epoch_ = 0;  // the next one read is adopted as is
    epoch_legacy_ = false;
    gens_.clear();
    SaveGenerationsLocked();
  }

  void OnFlushMessage(std::string_view message) {
    const size_t tab = message.rfind('\t');
    uint64_t gen = 0;
    if (tab == std::string_view::npos ||
        !ParseU64(message.substr(tab + 1), &gen)) {
      return;
    }
    Raise(std::string(message.substr(0, tab)), gen, /*remote=*/true);
  }

  void LoadGenerations(std::function<void()> then) {
    auto self = shared_from_this();
    redis_->Command(
        {"HGETALL", GenKey()}, 1,
        [self, then = std::move(then)](Result<Reply> r) {
          if (r.ok() && r->type == Reply::Type::kArray && r->elements.empty()) {
            // No generations at all: a Redis that restarted
            // empty (or a new one). Its entries are all new:
            // start again from 0, or every entry written from
            // now on would look stale here.
            self->ResetGenerations();
          }
          if (r.ok() && r->type == Reply::Type::kArray) {
            uint64_t epoch = 0;
            for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
              if (r->elements[i].str == kEpochField) {
                (void)ParseU64(r->elements[i + 1].str, &epoch);
              }
            }
            if (epoch != 0) {
              self->AdoptEpoch(epoch);
            } else {  // a new hash, or an earlier version's: give it one
              self->redis_->Command(
                  {"HSETNX", self->GenKey(), std::string(kEpochField),
                   self->NewEpoch()},
                  1, [](Result<Reply>) {});
            }
            for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
              uint64_t gen = 0;
              if (r->elements[i].str != kEpochField &&
                  ParseU64(r->elements[i + 1].str, &gen)) {
                self->Raise(r->elements[i].str, gen,
                            /*remote=*/true);
              }
            }
            std::lock_guard<std::mutex> lock(self->mu_);
            self->gens_loaded_ = true;
            self->SaveGenerationsLocked();
          }
          if (then) then();
        });
  }

  void ScheduleGenerationCheck() {
    auto timer = std::make_shared<asio::steady_timer>(
        ioc_, std::chrono::milliseconds(
                  std::max<int64_t>(options_.generation_check_ms, 10)));
    std::weak_ptr<Impl> weak = shared_from_this();
    timer->async_wait([weak, timer](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      self->LoadGenerations(nullptr);
      self->ScheduleGenerationCheck();
    });
  }

  // With the epoch, learned here: this instance's generations may be of an
  // epoch it has not read yet (a Redis restarted empty).
  std::vector<std::string> FlushCommand(std::string_view model) {
    std::vector<std::string> argv = {"EVAL", std::string(kFlushScript), "1"};
    argv.insert(argv.end(), {GenKey(), std::string(kEpochField), NewEpoch()});
    argv.emplace_back(model);
    return argv;
  }

  Result<uint64_t> Flush(std::string_view model) {
    return Flushed(model, redis_->CommandSync(FlushCommand(model), 1,
                                              options_.admin_timeout_ms));
  }

  // As Flush, not waiting for Redis (an I/O thread's); failures are logged.
  void FlushLater(std::string model) {
    auto self = shared_from_this();
    redis_->Command(
        FlushCommand(model), 1, options_.admin_timeout_ms,
        [self, model](Result<Reply> r) {
          try {
            Result<uint64_t> gen = self->Flushed(model, std::move(r));
            if (!gen.ok()) self->refusals_.Write(gen.status().ToString());
          } catch (...) {  // in the client's callback: nothing may escape
          }
        });
  }

  // The flush script's reply: the model's new generation, adopted here and
  // told to the other instances.
  Result<uint64_t> Flushed(std::string_view model, Result<Reply> r) {
    if (!r.ok()) return r.status().WithContext("shared tier flush");
    uint64_t epoch = 0;
    if (r->type != Reply::Type::kArray || r->elements.size() != 2 ||
        r->elements[0].type != Reply::Type::kInteger ||
        !ParseU64(r->elements[1].str, &epoch)) {
      return UnavailableError("shared tier flush: redis: " + r->str);
    }
    AdoptEpoch(epoch);
    const uint64_t gen = static_cast<uint64_t>(r->elements[0].integer);
    Raise(std::string(model), gen, /*remote=*/false);
    // Tell the others at once; they also see the new generation within
    // generation_check_ms if the message is lost.
    redis_->Command(
        {"PUBLISH", Channel(), std::string(model) + "\t" + std::to_string(gen)},
        0, [](Result<Reply>) {});
    return gen;
  }

  Result<bool> PurgeKey(const Digest& digest) {
    Result<Reply> r = redis_->CommandSync(
        {"DEL", EntryKey(DigestToHex(digest))}, 1, options_.admin_timeout_ms);
    if (!r.ok()) return r.status().WithContext("shared tier purge");
    if (r->type != Reply::Type::kInteger) {
      return UnavailableError("shared tier purge: redis: " + r->str);
    }
    return r->integer > 0;
  }

  // ---- walking the entries (tools) ----
  Status ForEachEntry(
      const std::optional<std::string>& model,
      const std::function<bool(const EntryView&)>& fn,
      const std::function<void(std::string_view, const Status&)>& on_corrupt) {
    return tier_internal::ForEachStoredEntry(
        *redis_, options_.prefix, model,
        [this](std::string_view value) { return DecodeValue(value); }, fn,
        on_corrupt);
  }

  // ---- fleet statistics ----
  struct Pending {
    uint64_t hits = 0, misses = 0, bypasses = 0, tokens = 0;
    int64_t cost = 0;
  };
  void Record(std::string_view model, SharedOutcome outcome,
              const Usage& saved) {
    std::lock_guard<std::mutex> lock(stats_mu_);
    Pending& p = pending_[fleet_models_.Admit(model)];
    switch (outcome) {
      case SharedOutcome::kHit:
        ++p.hits;
        p.tokens += saved.prompt_tokens + saved.completion_tokens;
        p.cost += saved.cost_nanousd;
        break;
      case SharedOutcome::kMiss:
        ++p.misses;
        break;
      case SharedOutcome::kBypass:
        ++p.bypasses;
        break;
    }
  }

  // Sends the pending counters; `sync` waits for the replies.
  Status SendStats(bool sync) {
    std::unordered_map<std::string, Pending> pending;
    {
      std::lock_guard<std::mutex> lock(stats_mu_);
      pending.swap(pending_);
    }
    Status status;
    for (const auto& [model, p] : pending) {
      std::vector<std::string> argv = {"EVAL", std::string(kAddScript), "1",
                                       StatsKey(model)};
      auto add = [&argv](const char* field, int64_t v) {
        if (v == 0) return;
        argv.push_back(field);
        argv.push_back(std::to_string(v));
      };
      add("hits", static_cast<int64_t>(p.hits));
      add("misses", static_cast<int64_t>(p.misses));
      add("bypasses", static_cast<int64_t>(p.bypasses));
      add("tokens_saved", static_cast<int64_t>(p.tokens));
      add("cost_saved_nanousd", p.cost);
      if (argv.size() == 4) continue;
      std::vector<std::string> sadd = {"SADD", ModelsKey(), model};
      if (sync) {
        Result<Reply> a =
            redis_->CommandSync(std::move(sadd), 1, options_.admin_timeout_ms);
        Result<Reply> b =
            redis_->CommandSync(std::move(argv), 3, options_.admin_timeout_ms);
        if (!a.ok()) status = a.status();
        if (!b.ok()) status = b.status();
        if (b.ok() && b->is_error()) status = UnavailableError(b->str);
      } else {
        redis_->Command(std::move(sadd), 1, [](Result<Reply>) {});
        redis_->Command(std::move(argv), 3, [](Result<Reply>) {});
      }
    }
    return status;
  }

  void ScheduleStatsFlush() {
    auto timer = std::make_shared<asio::steady_timer>(
        ioc_, std::chrono::milliseconds(
                  std::max<int64_t>(options_.stats_flush_ms, 10)));
    std::weak_ptr<Impl> weak = shared_from_this();
    timer->async_wait([weak, timer](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      (void)self->SendStats(/*sync=*/false);
      self->ScheduleStatsFlush();
    });
  }

  Result<FleetStats> ReadFleetStats() {
    return tier_internal::ReadFleetStats(*redis_, options_.prefix,
                                         options_.admin_timeout_ms);
  }

  SharedTierHealth Health() const {
    SharedTierHealth h;
    const RedisHealth r = redis_->Health();
    tier_internal::FillFromRedis(r, &h);
    // Also while commands fail with the breaker closed, or writes are refused.
    h.available = h.available && !writes_refused_.load();
    {
      std::lock_guard<std::mutex> lock(mu_);
      h.generations_loaded = gens_loaded_;
    }
    h.gets = gets_.load();
    h.hits = hits_.load();
    h.misses = misses_.load();
    h.stale = stale_.load();
    h.puts = puts_.load();
    h.put_errors = put_errors_.load();
    h.errors = r.failures + reply_errors_.load() + decode_errors_.load();
    h.leases_taken = leases_taken_.load();
    h.lease_waits = lease_waits_.load();
    h.lease_hits = lease_hits_.load();
    h.lease_timeouts = lease_timeouts_.load();
    h.lease_released_empty = lease_released_empty_.load();
    h.remote_flushes = remote_flushes_.load();
    return h;
  }

  uint64_t flush_count() const {
    return flush_count_.load(std::memory_order_acquire);
  }

  void SetListener(std::function<void(std::string_view)> listener) {
    std::vector<std::string> missed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      listener_ = listener;
      missed.swap(pending_flushes_);
    }
    // Flushes learned before the listener was set (at start, from the
    // generations file): the local tiers drop those models now.
    for (const std::string& model : missed) {
      if (listener) {
        listener(model == kAllModels ? std::string_view() : model);
        remote_flushes_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    SaveGenerationsLocked();
  }

  std::string NewToken() {
    std::lock_guard<std::mutex> lock(mu_);
    return tier_internal::HexToken(rng_(), rng_());
  }

  RedisClient& client() { return *redis_; }

 private:
  const RedisTierOptions options_;
  std::shared_ptr<RedisClient> redis_;
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;

  mutable std::mutex mu_;  // everything below up to stats_mu_
  bool stopped_ = false;
  bool gens_loaded_ = false;
  std::unordered_map<std::string, uint64_t> gens_;
  std::map<std::string, std::string> held_;  // lease key -> token
  std::function<void(std::string_view)> listener_;
  std::set<std::shared_ptr<asio::steady_timer>> polls_;  // lead waits'
  bool seeded_ = false;        // generations read from the file at start
  uint64_t epoch_ = 0;         // of gens_ (tier_format.h); 0: none known
  bool epoch_legacy_ = false;  // seeded from a file without an epoch
  std::vector<std::string> pending_flushes_;  // waiting for the listener
  std::mt19937_64 rng_;

  std::mutex flush_mu_;  // the flush thread's queue
  std::condition_variable flush_cv_;
  std::deque<std::string> flush_queue_;
  bool flush_stop_ = false;
  std::thread flush_thread_;

  std::mutex stats_mu_;  // and below
  std::unordered_map<std::string, Pending> pending_;
  tier_internal::FleetModels fleet_models_;

  std::atomic<uint64_t> gets_{0}, hits_{0}, misses_{0}, stale_{0},
      decode_errors_{0}, reply_errors_{0}, puts_{0}, put_errors_{0},
      leases_taken_{0}, lease_waits_{0}, lease_hits_{0}, lease_timeouts_{0},
      lease_released_empty_{0}, remote_flushes_{0}, flush_count_{0};
  std::atomic<bool> writes_refused_{false};  // the last write had an error
  RateLimitedLog refusals_;
};

// ---- RedisTier ----

Result<std::shared_ptr<RedisTier>> RedisTier::Create(RedisTierOptions options) {
  if (options.prefix.empty()) {
    return InvalidArgumentError("redis key prefix must not be empty");
  }
  if (options.lease_ms <= 0 || options.lease_wait_ms <= 0) {
    return InvalidArgumentError("lease times must be positive");
  }
  try {
    auto impl = std::make_shared<Impl>(std::move(options));
    if (Status s = impl->Start(); !s.ok()) return s;
    return std::shared_ptr<RedisTier>(new RedisTier(std::move(impl)));
  } catch (const std::exception& e) {
    return InternalError(std::string("cannot start the redis tier: ") +
                         e.what());
  }
}

RedisTier::RedisTier(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
RedisTier::~RedisTier() { impl_->Shutdown(); }

void RedisTier::Get(const RequestKey& key, GetCallback done) {
  impl_->Get(key, std::move(done));
}
void RedisTier::Put(const RequestKey& key, std::shared_ptr<const Entry> e) {
  impl_->Put(key, std::move(e));
}
void RedisTier::AcquireLead(const RequestKey& key,
                            std::function<void(Lead)> done) {
  impl_->AcquireLead(key, std::move(done));
}
void RedisTier::Release(const RequestKey& key, const std::string& token) {
  impl_->Release(key, token);
}
void RedisTier::Record(std::string_view base_model, SharedOutcome outcome,
                       const Usage& saved) {
  impl_->Record(base_model, outcome, saved);
}
Result<uint64_t> RedisTier::FlushModel(std::string_view base_model) {
  if (base_model.empty() || base_model == kAllModels) {
    return InvalidArgumentError("no such model: \"" + std::string(base_model) +
                                "\"");
  }
  return impl_->Flush(base_model);
}
Result<uint64_t> RedisTier::FlushAll() { return impl_->Flush(kAllModels); }
void RedisTier::FlushModelLater(std::string_view base_model) {
  if (!base_model.empty() && base_model != kAllModels) {
    impl_->FlushLater(std::string(base_model));
  }
}
Result<bool> RedisTier::PurgeKey(const Digest& digest) {
  return impl_->PurgeKey(digest);
}
void RedisTier::SetFlushListener(
    std::function<void(std::string_view base_model)> listener) {
  impl_->SetListener(std::move(listener));
}
SharedTierHealth RedisTier::Health() const { return impl_->Health(); }
uint64_t RedisTier::flush_count() const { return impl_->flush_count(); }
Result<FleetStats> RedisTier::ReadFleetStats() {
  return impl_->ReadFleetStats();
}
Status RedisTier::ForEachEntry(
    const std::optional<std::string>& model,
    const std::function<bool(const EntryView&)>& fn,
    const std::function<void(std::string_view, const Status&)>& on_corrupt) {
  return impl_->ForEachEntry(model, fn, on_corrupt);
}
Status RedisTier::FlushStats() { return impl_->SendStats(/*sync=*/true); }
void RedisTier::Shutdown() { impl_->Shutdown(); }
RedisClient& RedisTier::client() { return impl_->client(); }
std::string RedisTier::EntryKey(const Digest& digest) const {
  return impl_->EntryKey(DigestToHex(digest));
}

}  // namespace llmcache::net
