// Factory of the CPU reference backend.
#pragma once

#include <memory>

#include "op_args.hpp"

namespace mhc::cpu {

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace mhc::cpu
