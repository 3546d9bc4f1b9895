package dev.nucleon.actors;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.internal.NDArrayEx;
import com.tngtech.archunit.base.DescribedPredicate;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.domain.JavaMethodCall;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.lang.ArchRule;
import com.tngtech.archunit.lang.EvaluationResult;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * No production class calls a DJL arithmetic op with a Java number ({@code x.mul(0.5f)}): on the CPU engine the
 * number becomes a tensor over a Java direct buffer that is freed by the garbage collector while autograd may still
 * hold it, and backward then reads freed memory. {@code dev.nucleon.model.Ops} has the safe forms (see
 * model/README.md). The rule is checked on the compiled classes of every module on this classpath.
 */
class NumberOperandRuleTest {

  private static final Set<String> ARITHMETIC = Set.of("add", "sub", "mul", "div", "mod", "pow", "maximum",
      "minimum", "addi", "subi", "muli", "divi", "modi", "powi", "maximumi", "minimumi", "rsub", "rdiv", "rmod",
      "rpow", "rsubi", "rdivi", "rmodi", "rpowi");

  private static final DescribedPredicate<JavaMethodCall> NUMBER_OPERAND =
      new DescribedPredicate<>("an NDArray arithmetic op with a java.lang.Number operand") {
        @Override
        public boolean test(JavaMethodCall call) {
          var owner = call.getTargetOwner();
          return ARITHMETIC.contains(call.getName())
              && (owner.isAssignableTo(NDArray.class) || owner.isAssignableTo(NDArrayEx.class)
                  || owner.isEquivalentTo(NDArrays.class))
              && call.getTarget().getRawParameterTypes().stream().anyMatch(t -> t.isEquivalentTo(Number.class));
        }
      };

  private static final ArchRule RULE = noClasses().should().callMethodWhere(NUMBER_OPERAND)
      .because("the scalar tensor DJL makes for the number lives in a Java buffer that the GC frees while autograd "
          + "may still read it; use dev.nucleon.model.Ops (mul, div, add, sub, minimum, scalar)");

  @Test
  void noProductionClassCallsAnArithmeticOpWithAJavaNumber() {
    JavaClasses production = new ClassFileImporter()
        .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
        .withImportOption(location -> !location.contains("-tests.jar"))
        .importPackages("dev.nucleon");
    assertTrue(production.size() > 200, "the import should see every module's classes, saw " + production.size());
    assertTrue(production.stream().anyMatch(c -> c.getName().equals("dev.nucleon.model.Attention")),
        "the model module must be among the checked classes");
    assertTrue(production.stream().anyMatch(c -> c.getName().equals("dev.nucleon.learner.PolicyLoss")),
        "the learner module must be among the checked classes");
    RULE.check(production);
  }

  @Test
  void theRuleCatchesANumberOperand() {
    JavaClasses sample = new ClassFileImporter().importClasses(Offender.class);
    EvaluationResult result = RULE.evaluate(sample);
    assertTrue(result.hasViolation(), "x.mul(2f) must be reported");
    String report = result.getFailureReport().toString();
    for (String method : java.util.List.of("twice", "half", "oneMinus")) {
      assertTrue(report.contains("Offender." + method + "("), method + " must be reported:\n" + report);
    }
    assertFalse(RULE.evaluate(new ClassFileImporter().importClasses(Compliant.class)).hasViolation(),
        "tensor operands and clip(Number, Number) are allowed");
  }

  /** What the rule forbids, in its three spellings. */
  static final class Offender {
    static NDArray twice(NDArray x) {
      return x.mul(2f);
    }

    static NDArray half(NDArray x) {
      return NDArrays.div(x, 2f);
    }

    static NDArray oneMinus(NDArray x) {
      return x.getNDArrayInternal().rsub(1f);
    }
  }

  /** What it allows: tensor operands, and clamps (libtorch takes those numbers as scalars, not tensors). */
  static final class Compliant {
    static NDArray scaled(NDArray x, NDArray k) {
      return x.mul(k).clip(-1f, 1f);
    }
  }
}
