/* audiograd kernel prelude: scalar helpers shared by every generated kernel. */
/* AG_VEC: glibc's vector math library has it (since 2.22); AG_VEC2: since glibc 2.35 */
#ifdef AG_MVEC
#define AG_VEC __attribute__((simd("notinbranch")))
#else
#define AG_VEC
#endif
#ifdef AG_MVEC2
#define AG_VEC2 __attribute__((simd("notinbranch")))
#else
#define AG_VEC2
#endif
float expf(float) AG_VEC; float logf(float) AG_VEC; float sinf(float) AG_VEC; float cosf(float) AG_VEC;
float powf(float, float) AG_VEC; float sqrtf(float);
float log1pf(float) AG_VEC2; float tanhf(float) AG_VEC2; float erff(float) AG_VEC2; float atan2f(float, float) AG_VEC2;
double exp(double) AG_VEC; double log(double) AG_VEC; double sin(double) AG_VEC; double cos(double) AG_VEC;
double pow(double, double) AG_VEC; double sqrt(double);
double log1p(double) AG_VEC2; double tanh(double) AG_VEC2; double erf(double) AG_VEC2; double atan2(double, double) AG_VEC2;
#define AG_INF __builtin_inf()
#define AG_NAN __builtin_nan("")
#define AG_MAX(a, b) (((a) > (b) || (a) != (a)) ? (a) : (b))
#define AG_MIN(a, b) (((a) < (b) || (a) != (a)) ? (a) : (b))
#define AG_SIGN(a) ((a) > 0 ? 1 : ((a) < 0 ? -1 : (a)))
static inline float ag_sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }
static inline double ag_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
