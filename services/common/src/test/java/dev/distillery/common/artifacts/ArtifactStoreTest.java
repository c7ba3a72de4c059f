package dev.distillery.common.artifacts;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ArtifactStoreTest {
  @Test
  void writesAtomicallyAndChecksWhatItReads(@TempDir Path dir) throws IOException {
    ArtifactStore store = new ArtifactStore(dir);
    var ref = store.write("job-1", "model.params", out -> out.write("weights".getBytes(StandardCharsets.UTF_8)));
    Path path = ArtifactStore.open(ref);
    assertThat(path).isEqualTo(dir.resolve("job-1/model-9a129038d9a0.params"));
    assertThat(ref.getSizeBytes()).isEqualTo(7);
    assertThat(ref.getSha256()).isEqualTo("9a129038d9a00aed0cf6a7ea059ca50a813449061ab87848cf1a13eafdf33b2c"); // sha256sum of "weights"
    try (var listing = Files.list(path.getParent())) {
      assertThat(listing).containsExactly(path); // no temporary files left
    }
    Files.writeString(path, "tampered");
    assertThatThrownBy(() -> ArtifactStore.open(ref)).hasMessageContaining("expected " + ref.getSha256());
  }

  @Test
  void refusesNamesThatEscapeTheStore(@TempDir Path dir) {
    ArtifactStore store = new ArtifactStore(dir);
    assertThatThrownBy(() -> store.write("../elsewhere", "x", out -> {})).isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> ArtifactStore.localPath("s3://bucket/key")).hasMessageContaining("only file:");
  }
}
