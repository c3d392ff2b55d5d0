// Everything a program that uses vkalex needs.
#pragma once

#include "vkalex/context.hpp"
#include "vkalex/cpu.hpp"
#include "vkalex/error.hpp"
#include "vkalex/files.hpp"
#include "vkalex/op_params.hpp"
#include "vkalex/ops.hpp"
#include "vkalex/random.hpp"
#include "vkalex/recorder.hpp"
#include "vkalex/shape.hpp"
#include "vkalex/check.hpp"
#include "vkalex/image.hpp"
#include "vkalex/model.hpp"
#include "vkalex/net.hpp"
#include "vkalex/safetensors.hpp"
#include "vkalex/trainer.hpp"
#include "vkalex/dataset.hpp"
