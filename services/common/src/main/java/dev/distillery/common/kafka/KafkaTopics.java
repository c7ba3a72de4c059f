package dev.distillery.common.kafka;

import dev.distillery.schemas.kafka.Topics;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.errors.TopicExistsException;

/** Creates Distillery's topics on a broker where they do not exist yet. */
public final class KafkaTopics {
  private KafkaTopics() {}

  public static void ensure(String bootstrapServers, int partitions) throws InterruptedException, ExecutionException {
    try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers))) {
      var existing = admin.listTopics().names().get();
      List<NewTopic> missing = Topics.ALL.stream()
          .map(topic -> topic.name())
          .filter(name -> !existing.contains(name))
          .map(name -> new NewTopic(name, partitions, (short) 1))
          .toList();
      try {
        admin.createTopics(missing).all().get();
      } catch (ExecutionException e) {
        if (!(e.getCause() instanceof TopicExistsException)) {
          throw e;
        }
      }
    }
  }
}
