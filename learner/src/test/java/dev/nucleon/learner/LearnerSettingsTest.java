package dev.nucleon.learner;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import org.junit.jupiter.api.Test;

class LearnerSettingsTest {

  static Config with(String hocon) {
    return ConfigFactory.parseString(hocon, com.typesafe.config.ConfigParseOptions.defaults()
        .setOriginDescription("run.conf")).withFallback(ConfigFactory.defaultReference()).resolve();
  }

  @Test
  void defaultsAreTheDocumentedOnes() {
    LearnerSettings s = LearnerSettings.from(with(""));
    assertEquals(0.2, s.loss().clipLow());
    assertEquals(LossSettings.Aggregation.TOKEN_MEAN, s.loss().aggregation());
    assertEquals(3e-4, s.optimizer().lr());
    assertEquals(1.0, s.optimizer().clipNorm());
    assertEquals(LrSchedule.Type.CONSTANT, s.optimizer().schedule().type());
    assertEquals(1f, s.temperature());
    assertEquals(null, s.lora(), "LoRA is off by default");
    assertEquals(Updates.ONE, s.updates(), "one optimizer step per batch by default");
  }

  @Test
  void loraSettingsAreReadAndDropoutIsRefused() {
    LearnerSettings s = LearnerSettings.from(with("nucleon.learner.lora { rank = 8, alpha = 32, targets = [q_proj,"
        + " v_proj] }"));
    assertEquals(8, s.lora().rank());
    assertEquals(4.0, s.lora().scalingOf("model.layers.0.self_attn.q_proj"));
    assertEquals(java.util.List.of("q_proj", "v_proj"), s.lora().targets());
    var e = assertThrows(ConfigException.class, () -> LearnerSettings.from(with(
        "nucleon.learner.lora { rank = 8, dropout = 0.05 }")));
    assertTrue(e.getMessage().contains("nucleon.learner.lora.dropout") && e.getMessage().contains("run.conf"),
        e.getMessage());
    e = assertThrows(ConfigException.class, () -> LearnerSettings.from(with(
        "nucleon.learner.lora { rank = 8, targets = [qkv] }")));
    assertTrue(e.getMessage().contains("nucleon.learner.lora.targets") && e.getMessage().contains("'qkv'"),
        e.getMessage());
  }

  @Test
  void valuesAreRead() {
    LearnerSettings s = LearnerSettings.from(with("nucleon.algorithm { temperature = 0.7, loss { clip-high = 0.28,"
        + " aggregation = constant-normalizer, normalizer-constant = 512, kl-coef = 0.01, kl-estimator = k1 } }\n"
        + "nucleon.learner.schedule { type = cosine, warmup-steps = 10, total-steps = 100 }\n"
        + "nucleon.learner { epochs = 2, minibatches = 4 }"));
    assertEquals(new Updates(2, 4), s.updates());
    assertEquals(0.28, s.loss().clipHigh());
    assertEquals(LossSettings.Aggregation.CONSTANT_NORMALIZER, s.loss().aggregation());
    assertEquals(512, s.loss().normalizerConstant());
    assertEquals(LossSettings.KlEstimator.K1, s.loss().klEstimator());
    assertEquals(0.7f, s.temperature());
    assertEquals(LrSchedule.Type.COSINE, s.optimizer().schedule().type());
  }

  @Test
  void badValuesNameTheKeyAndTheFile() {
    var e = assertThrows(ConfigException.class, () -> LearnerSettings.from(with(
        "nucleon.algorithm.loss.clip-low = 1.5")));
    assertTrue(e.getMessage().contains("nucleon.algorithm.loss.clip-low") && e.getMessage().contains("run.conf"),
        e.getMessage());
    e = assertThrows(ConfigException.class, () -> LearnerSettings.from(with(
        "nucleon.algorithm.loss.aggregation = average")));
    assertTrue(e.getMessage().contains("aggregation") && e.getMessage().contains("token-mean"), e.getMessage());
    e = assertThrows(ConfigException.class, () -> LearnerSettings.from(with("nucleon.learner.optimizer.lr = fast")));
    assertTrue(e.getMessage().contains("nucleon.learner.optimizer.lr"), e.getMessage());
    e = assertThrows(ConfigException.class, () -> LearnerSettings.from(with(
        "nucleon.learner.schedule { type = linear, warmup-steps = 10, total-steps = 5 }")));
    assertTrue(e.getMessage().contains("total-steps"), e.getMessage());
    e = assertThrows(ConfigException.class, () -> LearnerSettings.from(with("nucleon.learner.minibatches = 0")));
    assertTrue(e.getMessage().contains("nucleon.learner.minibatches") && e.getMessage().contains("integer >= 1"),
        e.getMessage());
    e = assertThrows(ConfigException.class, () -> LearnerSettings.from(with("nucleon.learner.epochs = 1.5")));
    assertTrue(e.getMessage().contains("nucleon.learner.epochs"), e.getMessage());
  }
}
