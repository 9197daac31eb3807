#include "providers/http_client.h"

#include <curl/curl.h>

#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cctype>
#include <chrono>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

namespace gw::providers {

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

std::string_view to_string(transfer_status s) {
  switch (s) {
    case transfer_status::ok: return "ok";
    case transfer_status::connect_failed: return "connect_failed";
    case transfer_status::tls_failed: return "tls_failed";
    case transfer_status::timed_out_connect: return "timed_out_connect";
    case transfer_status::timed_out_first_byte: return "timed_out_first_byte";
    case transfer_status::timed_out_total: return "timed_out_total";
    case transfer_status::timed_out_idle: return "timed_out_idle";
    case transfer_status::io_error: return "io_error";
  }
  return "unknown";
}

bool is_timeout(transfer_status s) {
  return s == transfer_status::timed_out_connect || s == transfer_status::timed_out_first_byte ||
         s == transfer_status::timed_out_total || s == transfer_status::timed_out_idle;
}

namespace {
void global_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}
}  // namespace

struct http_client::impl {
  // One transfer: the easy handle, its buffers and its watchdog.
  struct transfer {
    impl* owner = nullptr;
    transfer_id id = 0;
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    std::shared_ptr<transfer_handler> handler;
    http_request request;
    header_list response_headers;
    bool head_sent = false;
    bool paused = false;
    bool got_first_byte = false;
    bool cancelled = false;  // removal is deferred: curl forbids it inside its own callbacks
    // Set when our own watchdog aborted the transfer, so on_done reports the right reason.
    std::optional<transfer_status> forced;
    clock_type::time_point last_activity;
    asio::steady_timer watchdog;
    explicit transfer(asio::io_context& io) : watchdog(io) {}
  };

  // One socket curl asked us to watch.
  struct socket_watch {
    asio::posix::stream_descriptor sd;
    int want = 0;  // CURL_POLL_IN / OUT / INOUT
    bool reading = false;
    bool writing = false;
    bool removed = false;
    explicit socket_watch(asio::io_context& io, int fd) : sd(io, fd) {}
  };

  asio::io_context& io;
  CURLM* multi = nullptr;
  asio::steady_timer timer;
  bool timer_pending = false;
  std::unordered_map<transfer_id, std::unique_ptr<transfer>> transfers;
  std::unordered_map<curl_socket_t, std::shared_ptr<socket_watch>> sockets;
  std::vector<CURL*> idle_easies;  // reused handles (curl_easy_reset keeps nothing of the old one)
  transfer_id next_id = 1;
  // Liveness flag for posted work that may outlive *this.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  explicit impl(asio::io_context& ctx) : io(ctx), timer(ctx) {
    global_init_once();
    multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &impl::on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &impl::on_timer_update);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 1024L);
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  }

  ~impl() {
    *alive = false;
    timer.cancel();
    for (auto& [id, t] : transfers) release_transfer(*t);
    transfers.clear();
    for (auto& [fd, w] : sockets) {
      w->removed = true;
      w->sd.release();
    }
    sockets.clear();
    for (CURL* e : idle_easies) curl_easy_cleanup(e);
    curl_multi_cleanup(multi);
  }

  void release_transfer(transfer& t) {
    t.watchdog.cancel();
    curl_multi_remove_handle(multi, t.easy);
    if (t.headers) curl_slist_free_all(t.headers);
    t.headers = nullptr;
    curl_easy_reset(t.easy);
    if (idle_easies.size() < 256) {
      idle_easies.push_back(t.easy);
    } else {
      curl_easy_cleanup(t.easy);
    }
    t.easy = nullptr;
  }

  // ---- curl callbacks -------------------------------------------------------------------------

  static int on_socket(CURL*, curl_socket_t s, int what, void* userp, void*) {
    auto* self = static_cast<impl*>(userp);
    if (what == CURL_POLL_REMOVE) {
      // The connection goes idle in curl's cache: stop reacting but keep the epoll registration,
      // so the next transfer on it costs no epoll_ctl. on_close_socket drops it for good.
      auto it = self->sockets.find(s);
      if (it != self->sockets.end()) it->second->want = 0;
      return 0;
    }
    auto& w = self->sockets[s];
    if (!w) w = std::make_shared<socket_watch>(self->io, s);
    w->want = what;
    self->arm(s, w);
    return 0;
  }

  void arm(curl_socket_t s, const std::shared_ptr<socket_watch>& w) {
    if ((w->want & CURL_POLL_IN) && !w->reading) {
      w->reading = true;
      w->sd.async_wait(asio::posix::stream_descriptor::wait_read,
                       [this, s, w, alive = alive](const boost::system::error_code& ec) {
                         w->reading = false;
                         if (!*alive || ec || w->removed) return;
                         if (!(w->want & CURL_POLL_IN)) return;
                         on_ready(s, CURL_CSELECT_IN);
                         if (!w->removed) arm(s, w);
                       });
    }
    if ((w->want & CURL_POLL_OUT) && !w->writing) {
      w->writing = true;
      w->sd.async_wait(asio::posix::stream_descriptor::wait_write,
                       [this, s, w, alive = alive](const boost::system::error_code& ec) {
                         w->writing = false;
                         if (!*alive || ec || w->removed) return;
                         if (!(w->want & CURL_POLL_OUT)) return;
                         on_ready(s, CURL_CSELECT_OUT);
                         if (!w->removed) arm(s, w);
                       });
    }
  }

  void on_ready(curl_socket_t s, int ev) {
    int running = 0;
    curl_multi_socket_action(multi, s, ev, &running);
    drain_messages();
  }

  static int on_timer_update(CURLM*, long timeout_ms, void* userp) {
    auto* self = static_cast<impl*>(userp);
    if (timeout_ms < 0) {
      self->timer.cancel();
      self->timer_pending = false;
      return 0;
    }
    if (timeout_ms == 0) {
      // "As soon as possible": no timer round trip. Firing early is harmless for curl (it
      // re-arms), so a pending timer may stay as it is.
      asio::post(self->io, [self, alive = self->alive] {
        if (!*alive) return;
        int running = 0;
        curl_multi_socket_action(self->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        self->drain_messages();
      });
      return 0;
    }
    // Re-arming the timer costs a timerfd_settime whenever it is asio's earliest; keep a pending
    // timer that fires no later than curl asks (early is harmless: curl just re-arms).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    if (self->timer_pending && self->timer.expiry() <= deadline) return 0;
    self->timer_pending = true;
    self->timer.expires_at(deadline);
    self->timer.async_wait([self, alive = self->alive](const boost::system::error_code& ec) {
      if (ec || !*alive) return;
      self->timer_pending = false;
      int running = 0;
      curl_multi_socket_action(self->multi, CURL_SOCKET_TIMEOUT, 0, &running);
      self->drain_messages();
    });
    return 0;
  }

  static int on_close_socket(void* userp, curl_socket_t s) {
    auto* self = static_cast<impl*>(userp);
    auto it = self->sockets.find(s);
    if (it != self->sockets.end()) {
      it->second->removed = true;
      it->second->sd.release();  // deregisters from epoll without closing
      self->sockets.erase(it);
    }
    return ::close(s);
  }

  static size_t on_header_line(char* data, size_t size, size_t n, void* userp) {
    auto* t = static_cast<transfer*>(userp);
    std::string_view line(data, size * n);
    t->last_activity = clock_type::now();
    if (!t->got_first_byte) {
      t->got_first_byte = true;
      t->owner->arm_watchdog(*t);  // from now on the idle limit applies
    }
    if (line.starts_with("HTTP/")) {
      t->response_headers.clear();  // a new response (e.g. after 100 Continue)
      return size * n;
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return size * n;
    std::string name(line.substr(0, colon));
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
      value.remove_suffix(1);
    t->response_headers.emplace_back(std::move(name), std::string(value));
    return size * n;
  }

  void send_head(transfer& t) {
    if (t.head_sent) return;
    t.head_sent = true;
    long status = 0;
    curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
    t.handler->on_head(static_cast<int>(status), t.response_headers);
  }

  static size_t on_body(char* data, size_t size, size_t n, void* userp) {
    auto* t = static_cast<transfer*>(userp);
    t->last_activity = clock_type::now();
    if (t->cancelled) return CURL_WRITEFUNC_ERROR_COMPAT;
    if (!t->got_first_byte) {
      t->got_first_byte = true;
      t->last_activity = clock_type::now();
      t->owner->arm_watchdog(*t);
    }
    // The handler may cancel this transfer from inside a callback; keep it alive meanwhile.
    auto handler = t->handler;
    if (!t->head_sent) {
      t->owner->send_head(*t);
      if (t->cancelled) return CURL_WRITEFUNC_ERROR_COMPAT;
    }
    bool consumed = handler->on_data(std::string_view(data, size * n));
    if (t->cancelled) return CURL_WRITEFUNC_ERROR_COMPAT;
    if (!consumed) {
      t->paused = true;
      return CURL_WRITEFUNC_PAUSE;
    }
    return size * n;
  }
  // curl 7.88 has no CURL_WRITEFUNC_ERROR; returning 0 for a non-empty chunk aborts the transfer.
  static constexpr size_t CURL_WRITEFUNC_ERROR_COMPAT = 0;

  // ---- watchdog: first-byte and idle timeouts -------------------------------------------------

  void arm_watchdog(transfer& t) {
    auto limit = t.got_first_byte ? t.request.timeout.stream_idle : t.request.timeout.first_byte;
    if (limit.count() <= 0) return;
    t.watchdog.expires_at(t.last_activity + limit);
    t.watchdog.async_wait([this, id = t.id, alive = alive](const boost::system::error_code& ec) {
      if (ec || !*alive) return;
      auto it = transfers.find(id);
      if (it == transfers.end() || it->second->cancelled) return;
      transfer& tr = *it->second;
      auto lim = tr.got_first_byte ? tr.request.timeout.stream_idle : tr.request.timeout.first_byte;
      if (tr.paused) {  // we paused it for a slow client: not the upstream's fault
        tr.last_activity = clock_type::now();
        arm_watchdog(tr);
        return;
      }
      if (clock_type::now() >= tr.last_activity + lim) {
        tr.forced = tr.got_first_byte ? transfer_status::timed_out_idle
                                      : transfer_status::timed_out_first_byte;
        finish(id, CURLE_OPERATION_TIMEDOUT, "");
        return;
      }
      arm_watchdog(tr);
    });
  }

  // ---- completion -----------------------------------------------------------------------------

  void drain_messages() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      transfer* t = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
      if (!t) continue;
      CURLcode code = msg->data.result;
      finish(t->id, code, "");
    }
  }

  static transfer_status classify(CURLcode code, bool got_first_byte) {
    switch (code) {
      case CURLE_OK: return transfer_status::ok;
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_RESOLVE_PROXY:
      case CURLE_COULDNT_CONNECT: return transfer_status::connect_failed;
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CIPHER:
      case CURLE_SSL_CACERT_BADFILE: return transfer_status::tls_failed;
      case CURLE_OPERATION_TIMEDOUT:
        return got_first_byte ? transfer_status::timed_out_total : transfer_status::timed_out_connect;
      default: return transfer_status::io_error;
    }
  }

  void finish(transfer_id id, CURLcode code, const char*) {
    auto it = transfers.find(id);
    if (it == transfers.end()) return;
    std::unique_ptr<transfer> t = std::move(it->second);
    transfers.erase(it);
    if (t->cancelled) {
      release_transfer(*t);
      return;
    }
    transfer_result r;
    r.status = t->forced ? *t->forced : classify(code, t->got_first_byte);
    if (!t->forced && code == CURLE_OPERATION_TIMEDOUT) {
      // curl's own timer fired: CONNECTTIMEOUT before connect, else the total TIMEOUT.
      long connect_ok = 0;
      curl_easy_getinfo(t->easy, CURLINFO_CONNECT_TIME_T, &connect_ok);
      r.status = connect_ok > 0 ? transfer_status::timed_out_total : transfer_status::timed_out_connect;
      if (t->got_first_byte) r.status = transfer_status::timed_out_total;
    }
    if (code != CURLE_OK) r.detail = curl_easy_strerror(code);
    if (t->forced) r.detail = std::string(to_string(*t->forced));
    if (r.status == transfer_status::ok && !t->head_sent) send_head(*t);
    auto handler = std::move(t->handler);
    release_transfer(*t);
    handler->on_done(r);
  }

  // ---- API ------------------------------------------------------------------------------------

  transfer_id start(http_request req, std::shared_ptr<transfer_handler> handler) {
    auto t = std::make_unique<transfer>(io);
    t->owner = this;
    t->id = next_id++;
    t->handler = std::move(handler);
    t->request = std::move(req);
    t->last_activity = clock_type::now();
    if (!idle_easies.empty()) {
      t->easy = idle_easies.back();
      idle_easies.pop_back();
    } else {
      t->easy = curl_easy_init();
    }
    CURL* e = t->easy;
    const http_request& r = t->request;
    curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &impl::on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &impl::on_header_line);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, nullptr);  // bytes pass through as sent
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, &impl::on_close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, this);
    if (r.timeout.connect.count() > 0)
      curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(r.timeout.connect.count()));
    if (r.timeout.total.count() > 0)
      curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(r.timeout.total.count()));
    if (r.method == "GET") {
      curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
      curl_easy_setopt(e, CURLOPT_POST, 1L);
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, r.body.data());
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
      if (r.method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    }
    for (const auto& [name, value] : r.headers) {
      std::string line = name + ": " + value;
      t->headers = curl_slist_append(t->headers, line.c_str());
    }
    t->headers = curl_slist_append(t->headers, "Expect:");  // no 100-continue round trip
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);

    transfer_id id = t->id;
    transfer& ref = *t;
    transfers.emplace(id, std::move(t));
    arm_watchdog(ref);
    // curl_multi_add_handle only schedules (via the timer callback); nothing runs synchronously.
    curl_multi_add_handle(multi, e);
    return id;
  }

  void cancel(transfer_id id) {
    auto it = transfers.find(id);
    if (it == transfers.end() || it->second->cancelled) return;
    it->second->cancelled = true;
    it->second->handler.reset();
    it->second->watchdog.cancel();
    asio::post(io, [this, id, alive = alive] {
      if (!*alive) return;
      auto it2 = transfers.find(id);
      if (it2 == transfers.end()) return;
      std::unique_ptr<transfer> t = std::move(it2->second);
      transfers.erase(it2);
      release_transfer(*t);
    });
  }

  void resume(transfer_id id) {
    // curl_easy_pause may deliver data synchronously; run it from a fresh stack.
    asio::post(io, [this, id, alive = alive] {
      if (!*alive) return;
      auto it = transfers.find(id);
      if (it == transfers.end() || it->second->cancelled || !it->second->paused) return;
      it->second->paused = false;
      it->second->last_activity = clock_type::now();
      curl_easy_pause(it->second->easy, CURLPAUSE_CONT);
      drain_messages();
    });
  }
};

http_client::http_client(boost::asio::io_context& io) : impl_(std::make_unique<impl>(io)) {}
http_client::~http_client() = default;
http_client::transfer_id http_client::start(http_request request,
                                            std::shared_ptr<transfer_handler> handler) {
  return impl_->start(std::move(request), std::move(handler));
}
void http_client::cancel(transfer_id id) { impl_->cancel(id); }
void http_client::resume(transfer_id id) { impl_->resume(id); }
std::size_t http_client::active_transfers() const { return impl_->transfers.size(); }

}  // namespace gw::providers
