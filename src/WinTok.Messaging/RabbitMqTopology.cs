using RabbitMQ.Client;

namespace WinTok.Messaging;

/// <summary>
/// Declares one message type's queues (idempotent; publisher and consumer both call it at start):
/// a durable quorum work queue with a delivery limit, dead-lettering at-least-once into a direct exchange that routes
/// to the dead-letter queue. At-least-once dead-lettering (RabbitMQ ≥ 3.10) keeps a dead letter until the dead-letter
/// queue confirms it, and requires <c>overflow = reject-publish</c>. RabbitMQ 3.10 (Debian 12) predates the per-queue (3.11.15+)
/// consumer timeout, so the broker-wide <c>consumer_timeout</c> is set in deploy/services.sh instead.
/// </summary>
internal static class RabbitMqTopology
{
    public static async Task DeclareAsync(IChannel channel, QueueNames names, JobQueueOptions options, CancellationToken cancellationToken)
    {
        await channel.ExchangeDeclareAsync(names.DeadLetterExchange, ExchangeType.Direct, durable: true, autoDelete: false,
            arguments: null, cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(names.DeadLetterQueue, durable: true, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-queue-type"] = "quorum" }, cancellationToken: cancellationToken);
        await channel.QueueBindAsync(names.DeadLetterQueue, names.DeadLetterExchange, routingKey: names.Queue,
            cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(names.Queue, durable: true, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?>
            {
                ["x-queue-type"] = "quorum",
                ["x-delivery-limit"] = options.DeliveryLimit,
                ["x-dead-letter-exchange"] = names.DeadLetterExchange,
                ["x-dead-letter-routing-key"] = names.Queue,
                ["x-dead-letter-strategy"] = "at-least-once",
                ["x-overflow"] = "reject-publish",
            },
            cancellationToken: cancellationToken);
    }
}
