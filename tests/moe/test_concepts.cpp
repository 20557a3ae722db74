#include <doctest/doctest.h>

#include "nexa/moe.hpp"

// The concepts accept every shipped policy and reject parts put in the wrong slot.
static_assert(nexa::Router<nexa::TopKRouter<2>>);
static_assert(nexa::Router<nexa::TopKRouter<1, nexa::Frozen>>);
static_assert(nexa::Expert<nexa::T5FFN<nexa::Relu>>);
static_assert(nexa::Expert<nexa::T5FFN<nexa::GatedGelu>>);
static_assert(!nexa::Router<nexa::T5FFN<nexa::Relu>>);
static_assert(!nexa::Expert<nexa::TopKRouter<2>>);
static_assert(!nexa::Expert<int>);

TEST_CASE("Concepts: shipped policies satisfy Router and Expert") { CHECK(nexa::Router<nexa::TopKRouter<2>>); }
