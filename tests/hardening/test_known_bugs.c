/*
 * KNOWN LIBRARY BUGS: minimal reproducers, kept failing on purpose until src/ is fixed.
 *
 * Both are undefined behaviour inside validation (src/validate.cpp). In a normal build the
 * calls return a sensible status and these tests pass; in the sanitizer build
 * (scripts/test.d/50-sanitizers.sh: clang -fsanitize=address,undefined, halt on error) UBSan
 * stops the process and the test FAILS. fuzz/fuzz_api.c steers around both unless built with
 * -DMHC_FUZZ_KNOWN_BUGS (fuzz/run.sh: MHC_FUZZ_KNOWN_BUGS=1).
 *
 * Bug 1 -- DLDevice.device_type outside the DLDeviceType enum is loaded as the enum.
 *   validate.cpp CallChecker::check_device: `const int32_t type = t.device.device_type;`
 *   loads the C++ enum DLDeviceType. With the system DLPack 0.6 header the enumerators end at
 *   kDLCUDAManaged = 13, so the enum's values are 0..15; a C caller (or ctypes/cgo) can pass
 *   any int32, and newer DLPack producers do pass 16 (kDLHexagon), 17 (kDLMAIA), ... Loading
 *   such a value is undefined behaviour in C++ (UBSan: "load of value 16, which is not a
 *   valid value for type 'DLDeviceType'"); the compiler may assume the range and miscompile
 *   the device check. Fix: read the field without the enum type, e.g.
 *   `int32_t type; std::memcpy(&type, &t.device.device_type, sizeof type);`.
 *   Expected after the fix: MHC_ERROR_DEVICE_MISMATCH, no UB.
 *
 * Bug 2 -- pointer overflow for an empty tensor with a huge byte_offset.
 *   validate.cpp CallChecker::finish: when the tensor has 0 bytes (T = 0) it returns
 *   `static_cast<char *>(t->data) + t->byte_offset` before byte_offset is checked: with
 *   byte_offset = UINT64_MAX (or any offset that wraps the address) that pointer arithmetic
 *   overflows, which is undefined behaviour (UBSan: "addition of unsigned offset to 0x...
 *   overflowed to 0x..."). Fix: for an empty tensor return nullptr (the pointer is never
 *   used), or check byte_offset before the early return. Expected after the fix: no UB
 *   (MHC_SUCCESS for T = 0, or MHC_ERROR_INVALID_ARGUMENT for the offset).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "hardening.h"
#include "test_util.h"

static void test_bug1_device_type_outside_enum(void **state) {
  (void)state;
  mhc_context *ctx = mhct_cpu_context();
  assert_non_null(ctx);
  mhct_problem pb;
  assert_int_equal(mhct_problem_alloc(&pb, kDLCPU, 2, 8, 0), 0);
  const int32_t types[3] = {16 /* kDLHexagon, DLPack >= 0.8 */, 17 /* kDLMAIA */, -1};
  for (int i = 0; i < 3; ++i) {
    pb.x.dl.device.device_type = (DLDeviceType)types[i];
    const mhc_status_t st = hz_run(ctx, &pb, MHC_OP_HC_POST, 0, NULL);
    printf("device_type %d: %s: %s\n", types[i], mhc_status_string(st), mhc_last_error_message());
    assert_int_equal(st, MHC_ERROR_DEVICE_MISMATCH);
  }
  pb.x.dl.device.device_type = kDLCPU;
  mhct_problem_free(&pb);
  assert_int_equal(mhc_context_destroy(ctx), MHC_SUCCESS);
}

static void test_bug2_empty_tensor_byte_offset_overflow(void **state) {
  (void)state;
  mhc_context *ctx = mhct_cpu_context();
  assert_non_null(ctx);
  mhct_problem pb;
  assert_int_equal(mhct_problem_alloc(&pb, kDLCPU, 0, 8, 0), 0); /* T = 0 */
  pb.x.dl.byte_offset = UINT64_MAX;
  const mhc_status_t st = hz_run(ctx, &pb, MHC_OP_HC_POST, 0, NULL);
  printf("T = 0, x.byte_offset = UINT64_MAX: %s: %s\n", mhc_status_string(st),
         mhc_last_error_message());
  assert_true(st == MHC_SUCCESS || st == MHC_ERROR_INVALID_ARGUMENT);
  pb.x.dl.byte_offset = 0;
  mhct_problem_free(&pb);
  assert_int_equal(mhc_context_destroy(ctx), MHC_SUCCESS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bug1_device_type_outside_enum),
      cmocka_unit_test(test_bug2_empty_tensor_byte_offset_overflow),
  };
  return cmocka_run_group_tests_name("known library bugs", tests, NULL, NULL);
}
