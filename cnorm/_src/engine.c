/* The public C API: one driver per variant, per storage type. */
#include <stdlib.h>

#include "engine.h"

#define T float
#define SFX f32
#include "engine.inc"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "engine.inc"
#undef T
#undef SFX
