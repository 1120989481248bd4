// A tiny persistent thread pool with a fixed work split: run(n, f) calls f(0..n-1) once each, on the
// caller and the workers. Which thread runs task i never changes what task i computes, so results do
// not depend on the thread count as long as the caller cuts the work into tasks by fixed sizes.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

class Pool {
 public:
  ~Pool() { resize(1); }
  int size() const { return (int)workers_.size() + 1; }

  void resize(int threads) {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_ = false;
    for (int i = 1; i < threads; i++) workers_.emplace_back([this, g = gen_] { loop(g); });
  }

  void run(int n, const std::function<void(int)>& f) {
    if (n <= 0) return;
    if (workers_.empty() || n == 1) {
      for (int i = 0; i < n; i++) f(i);
      return;
    }
    {
      std::lock_guard<std::mutex> lk(m_);
      job_ = &f;
      ntasks_ = n;
      next_.store(0);
      active_ = (int)workers_.size();
      gen_++;
    }
    cv_.notify_all();
    work(f, n);
    std::unique_lock<std::mutex> lk(m_);
    done_.wait(lk, [this] { return active_ == 0; });
    job_ = nullptr;
  }

 private:
  void work(const std::function<void(int)>& f, int n) {
    for (int i = next_.fetch_add(1); i < n; i = next_.fetch_add(1)) f(i);
  }
  void loop(unsigned long long seen) {  // seen: the generation at creation, so no job is missed
    for (;;) {
      const std::function<void(int)>* f;
      int n;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return stop_ || gen_ != seen; });
        if (stop_) return;
        seen = gen_;
        f = job_;
        n = ntasks_;
      }
      work(*f, n);
      std::lock_guard<std::mutex> lk(m_);
      if (--active_ == 0) done_.notify_one();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex m_;
  std::condition_variable cv_, done_;
  const std::function<void(int)>* job_ = nullptr;
  int ntasks_ = 0, active_ = 0;
  std::atomic<int> next_{0};
  unsigned long long gen_ = 0;
  bool stop_ = false;
};
