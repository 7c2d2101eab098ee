namespace WinTok.Messaging;

/// <summary>Headers of a message this worker dead-lettered itself (malformed or poison), beside the broker's own <c>x-death</c>.</summary>
public static class DeadLetterHeaders
{
    /// <summary>Why: "Malformed message: …" or the handler's poison reason.</summary>
    public const string Reason = "x-wintok-reason";

    /// <summary>The work queue the message came from.</summary>
    public const string SourceQueue = "x-wintok-source-queue";

    /// <summary>Failed deliveries before this one.</summary>
    public const string DeliveryCount = "x-wintok-delivery-count";

    /// <summary>When, as ISO 8601 UTC.</summary>
    public const string DeadLetteredAt = "x-wintok-dead-lettered-at";
}
