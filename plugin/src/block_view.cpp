#include "cafshm/block_view.hpp"

#include <unistd.h>

#include <utility>

#include <caf/send.hpp>

#include "engine_link.hpp"
#include "shm_segment.hpp"

namespace cafshm {

caf::expected<block_view> block_view::open(const view_lease& lease, const block_ref& ref,
                                           std::shared_ptr<detail::engine_link> link,
                                           session s) {
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  uint64_t length = (lease.size + page - 1) / page * page; // only the block's own pages
  auto mapping = shm_segment::open(lease.data_segment, lease.writable, lease.offset, length);
  if (!mapping)
    return mapping.error();
  block_view result;
  result.mapping_ = std::make_unique<shm_segment>(std::move(*mapping));
  result.data_ = result.mapping_->data();
  result.size_ = lease.size;
  result.writable_ = lease.writable;
  result.ref_ = ref;
  result.link_ = std::move(link);
  result.session_ = s;
  return result;
}

block_view::block_view() = default;

block_view::block_view(block_view&& other) noexcept
  : mapping_(std::move(other.mapping_)),
    data_(std::exchange(other.data_, nullptr)),
    size_(std::exchange(other.size_, 0)),
    writable_(other.writable_),
    ref_(other.ref_),
    link_(std::move(other.link_)),
    session_(other.session_) {
}

block_view& block_view::operator=(block_view&& other) noexcept {
  if (this != &other) {
    close();
    mapping_ = std::move(other.mapping_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    writable_ = other.writable_;
    ref_ = other.ref_;
    link_ = std::move(other.link_);
    session_ = other.session_;
  }
  return *this;
}

block_view::~block_view() {
  close();
}

void block_view::close() {
  if (mapping_ && link_)
    link_->unmap(session_, ref_);
  release();
}

block_ref block_view::release() {
  auto ref = ref_;
  if (mapping_) {
    mapping_.reset();
    data_ = nullptr;
    link_.reset();
  }
  size_ = 0;
  return ref;
}

} // namespace cafshm
