#pragma once
// Everything for training: losses with gradients, AdamW, the cosine schedule, gradient clipping,
// dynamic loss scaling, fp32 master weights for 16-bit parameters.
#include "nexa/train/adamw.hpp"
#include "nexa/train/clip.hpp"
#include "nexa/train/loss.hpp"
#include "nexa/train/loss_scaler.hpp"
#include "nexa/train/master_weights.hpp"
#include "nexa/train/schedule.hpp"
