using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WinTok.Training;

/// <summary>
/// The reference's weight-decay split (utils/optimizer.py <c>partition_param_groups</c>, spec 4.6): a trainable
/// parameter is not decayed when it has fewer than 2 dimensions or its name contains one of
/// <see cref="NoDecayKeys"/> (so <c>position_embedding.weight</c> and <c>query_tokens_pos_embed</c> are not decayed,
/// while <c>query_tokens</c> and the codebooks are). Frozen parameters are in no group.
/// </summary>
public static class ParameterGroups
{
    /// <summary>Substrings that exempt a parameter from weight decay, as the reference lists them.</summary>
    public static IReadOnlyList<string> NoDecayKeys { get; } =
        ["norm_scale", "bn", "ln", "bias", "logit_scale", "position_embedding", "pos_embed", "mask_tokens"];

    public static bool IsDecayed(string name, Parameter parameter) =>
        parameter.dim() >= 2 && !NoDecayKeys.Any(key => name.Contains(key, StringComparison.Ordinal));

    /// <summary>
    /// The decayed group (weight decay <paramref name="weightDecay"/>) then the undecayed one (0), each in
    /// <paramref name="named"/> order, empty groups left out, as the reference builds them (no custom LR multiplier).
    /// </summary>
    public static IReadOnlyList<ParameterGroup> Partition(IEnumerable<(string Name, Parameter Parameter)> named, double learningRate, double weightDecay)
    {
        var trainable = named.Where(p => p.Parameter.requires_grad).ToList();
        var groups = new List<ParameterGroup>();
        var decayed = trainable.Where(p => IsDecayed(p.Name, p.Parameter)).ToList();
        var undecayed = trainable.Where(p => !IsDecayed(p.Name, p.Parameter)).ToList();
        if (decayed.Count > 0) groups.Add(new ParameterGroup("decay", decayed, weightDecay, learningRate));
        if (undecayed.Count > 0) groups.Add(new ParameterGroup("no_decay", undecayed, 0.0, learningRate));
        return groups;
    }
}
