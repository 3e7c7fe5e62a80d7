// The CPU kernel of latent_attention (ir/latent_attention.h), on the fused
// attention kernel's units (attention.h): absorbed or expanded, whichever
// takes fewer multiply-adds at the step's shape (latent_attention.cpp).
#pragma once

#include <cstdint>
#include <optional>

#include "backends/cpu/isa.h"
#include "runtime/kernel.h"

namespace kiln::cpu {

enum class LatentForm : uint8_t { Absorbed, Expanded };

// Runs the op with the kernels of `isa`; nullopt for what it does not cover
// (non-f32 q, a float64 mask, rank 0). `form`, when given, says which ran.
std::optional<Status> runLatentAttention(const KernelContext& ctx, Isa isa, LatentForm* form = nullptr);

}  // namespace kiln::cpu
