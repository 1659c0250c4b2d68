/*
 * Regression tests of library bugs found by the hardening work (fuzz/fuzz_api.c under UBSan).
 * Both were undefined behaviour inside validation (src/validate.cpp), invisible in a normal
 * build; they fail under the sanitizer build (scripts/test.d/50-sanitizers.sh: clang
 * -fsanitize=address,undefined, halt on error) if they come back. Fixed in bfd90dd.
 *
 * Bug 1 -- DLDevice.device_type outside the DLDeviceType enum was loaded as the enum.
 *   CallChecker::check_device read `const int32_t type = t.device.device_type;`, a load of
 *   the C++ enum DLDeviceType. With the system DLPack 0.6 header the enumerators end at
 *   kDLCUDAManaged = 13, so the enum's values are 0..15; a C caller (or ctypes/cgo) can pass
 *   any int32, and newer DLPack producers do pass 16 (kDLHexagon), 17 (kDLMAIA), ... UBSan:
 *   "load of value 16, which is not a valid value for type 'DLDeviceType'". Now read with
 *   memcpy into an int32. Expected: MHC_ERROR_DEVICE_MISMATCH.
 *
 * Bug 2 -- pointer overflow for an empty tensor with a huge byte_offset.
 *   CallChecker::finish returned `static_cast<char *>(t->data) + t->byte_offset` for a tensor
 *   of 0 bytes (T = 0) before byte_offset was checked; byte_offset = UINT64_MAX wraps the
 *   address. UBSan: "addition of unsigned offset to 0x... overflowed to 0x...". Now returns
 *   nullptr. Expected: MHC_SUCCESS (T = 0 does nothing) or MHC_ERROR_INVALID_ARGUMENT.
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
  return cmocka_run_group_tests_name("regressions", tests, NULL, NULL);
}
