#include "collect_blocks.hpp"

#include <utility>

namespace pipeline {

void collect_blocks(caf::event_based_actor* self, cafshm::pool& pool,
                    std::vector<cafshm::pool::loan>& held, std::function<void()> done,
                    std::function<void(caf::error&)> failed) {
  while (auto loan = pool.try_loan())
    held.push_back(std::move(*loan));
  if (held.size() >= pool.count()) {
    done();
    return;
  }
  pool.get_loan(self).then(
    [self, &pool, &held, done, failed](cafshm::pool::loan&& loan) {
      held.push_back(std::move(loan));
      collect_blocks(self, pool, held, done, failed);
    },
    failed);
}

} // namespace pipeline
