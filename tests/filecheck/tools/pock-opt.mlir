// RUN: pock-opt %s -p cse | filecheck %s
// RUN: pock-opt %s -p canonicalize,cse --print-ir-after-all 2>&1 >/dev/null | filecheck %s --check-prefix=DUMP
// RUN: pock-opt %s --generic | filecheck %s --check-prefix=GENERIC
// RUN: pock-opt %s --generic | pock-opt | filecheck %s --check-prefix=ROUNDTRIP

// cse merges the two reads of @w, but not the read after the write.
builtin.module {
  train.param @w : tensor<4xf32> {role = "weight", trainable = true}
  func.func @f(%x : tensor<4xf32>) -> tensor<4xf32> {
    %a = train.get @w : tensor<4xf32>
    %b = train.get @w : tensor<4xf32>
    %s = train.add %a, %b : tensor<4xf32>
    train.set @w, %s : tensor<4xf32>
    %c = train.get @w : tensor<4xf32>
    %u = train.add %s, %c : tensor<4xf32>
    func.return %u : tensor<4xf32>
  }
}

// CHECK:      %a = train.get @w : tensor<4xf32>
// CHECK-NEXT: %s = train.add %a, %a : tensor<4xf32>
// CHECK-NEXT: train.set @w, %s : tensor<4xf32>
// CHECK-NEXT: %c = train.get @w : tensor<4xf32>
// CHECK-NEXT: %u = train.add %s, %c : tensor<4xf32>

// DUMP:      // -----// IR Dump After canonicalize //----- //
// DUMP:      // -----// IR Dump After cse //----- //
// DUMP-NOT:  %b = train.get

// GENERIC:   %a = "train.get"() <{param = @w}> : () -> tensor<4xf32>
// GENERIC:   "train.set"(%s) <{param = @w}> : (tensor<4xf32>) -> ()

// ROUNDTRIP: %b = train.get @w : tensor<4xf32>
// ROUNDTRIP: train.set @w, %s : tensor<4xf32>
