#!/usr/bin/env python3
"""Generates examples/game_ads.csv: a mobile-game user-acquisition campaign table.

Each row is one ad (creative x placement) with its Country, Channel, Creative_Type, English ad
copy, delivery (Impressions) and results (CTR %, CVR %, ROAS). Rows come from four latent
creative strategies, recorded in `true_segment`:

  reward_push       free gems / login bonuses: clicky (high CTR), weak payers (low ROAS)
  nostalgia_social  classic gameplay, guilds, playing with old friends: loyal converters
  high_spec_visual  cinematic graphics, next-gen engine: low CTR, high ROAS (strong in US)
  competitive_pvp   ranked PvP, esports, leaderboards: strong in KR, good CVR

Metrics depend on the segment and on Country, Channel and Creative_Type, with multiplicative
log-normal noise. Ad copy is assembled from segment-specific hooks, bodies and calls to action
(plus a few phrases shared by all segments), so the table holds hundreds of distinct sentences.
About 1% of texts, 2% of metric cells and 1% of categorical cells are missing, as in real
exports.

Only the standard library is used; the output is identical for a given --seed.

    python3 examples/gen_game_ads.py --rows 2400 --seed 7 --out examples/game_ads.csv
"""

import argparse
import csv
import math
import random

SEGMENTS = ["reward_push", "nostalgia_social", "high_spec_visual", "competitive_pvp"]
WEIGHTS = [0.3, 0.25, 0.2, 0.25]

COUNTRY = {  # P(country | segment)
    "reward_push": [0.3, 0.3, 0.4],
    "nostalgia_social": [0.3, 0.45, 0.25],
    "high_spec_visual": [0.2, 0.25, 0.55],
    "competitive_pvp": [0.55, 0.25, 0.2],
}
COUNTRIES = ["KR", "JP", "US"]
CHANNEL = {
    "reward_push": [0.25, 0.2, 0.55],
    "nostalgia_social": [0.6, 0.25, 0.15],
    "high_spec_visual": [0.25, 0.55, 0.2],
    "competitive_pvp": [0.2, 0.35, 0.45],
}
CHANNELS = ["Facebook", "Google", "TikTok"]
CREATIVE = {
    "reward_push": [0.3, 0.5, 0.2],
    "nostalgia_social": [0.35, 0.5, 0.15],
    "high_spec_visual": [0.75, 0.15, 0.1],
    "competitive_pvp": [0.35, 0.15, 0.5],
}
CREATIVES = ["Video", "Image", "Playable"]

# Base metrics per segment: CTR %, CVR %, ROAS.
BASE = {
    "reward_push": (2.6, 1.4, 0.75),
    "nostalgia_social": (1.5, 3.1, 1.6),
    "high_spec_visual": (1.1, 2.2, 2.5),
    "competitive_pvp": (1.8, 2.7, 1.9),
}
COUNTRY_EFFECT = {"KR": (1.10, 1.00, 1.05), "JP": (0.95, 1.05, 1.30), "US": (1.00, 0.90, 1.10)}
CHANNEL_EFFECT = {"Facebook": (1.00, 1.00, 1.00), "Google": (0.85, 1.20, 1.10), "TikTok": (1.40, 0.80, 0.85)}
CREATIVE_EFFECT = {"Video": (1.15, 1.00, 1.05), "Image": (0.90, 0.95, 0.95), "Playable": (1.05, 1.30, 1.10)}
INTERACTION = {("high_spec_visual", "US"): (1.0, 1.0, 1.25), ("competitive_pvp", "KR"): (1.1, 1.15, 1.2)}

TEXT = {
    "reward_push": {
        "hook": [
            "Claim {n} free gems today!",
            "Log in now and grab your daily reward.",
            "Free {item} waiting in your mailbox!",
            "Get {n} diamonds just for joining.",
            "Your welcome bonus is ready: {n} coins!",
            "Spin the lucky wheel for a free {item}.",
            "Daily login rewards are back, bigger than ever.",
            "New players get a legendary {item} for free.",
            "Collect {n} gold every single day.",
            "Limited-time gift: {n} free summons!",
        ],
        "body": [
            "Rewards stack up every day you play.",
            "No purchase needed to unlock the bonus chest.",
            "Open the treasure box and keep everything inside.",
            "Complete three quests to double your loot.",
            "Invite nobody, pay nothing, just collect.",
            "The event ends soon, so don't miss your free pulls.",
            "Check in for seven days to claim the ultimate prize.",
            "Every level up drops more free rewards.",
        ],
        "cta": ["Claim now!", "Grab it before it's gone.", "Download and collect.", "Tap to get your reward.", "Free to play, free to win."],
    },
    "nostalgia_social": {
        "hook": [
            "Remember the classic RPG you grew up with?",
            "The legendary {genre} is back, just like the old days.",
            "Relive your childhood adventures with old friends.",
            "Your guild from {year} is waiting for you.",
            "The original world, faithfully restored.",
            "Rediscover the game that started it all.",
            "Reunite with your party and go on one more quest.",
            "Pixel-perfect nostalgia, now on your phone.",
        ],
        "body": [
            "Team up with friends and rebuild your guild together.",
            "Chat, trade and explore with players who never left.",
            "Familiar towns, classic music and the same heroes you loved.",
            "Bring your old crew back for weekly guild raids.",
            "Play together with family in co-op dungeons.",
            "The community you missed is still here.",
            "Share the memories and make new ones with your friends.",
        ],
        "cta": ["Come home to the adventure.", "Join your friends today.", "Start your journey again.", "Play together now.", "Reunite your guild."],
    },
    "high_spec_visual": {
        "hook": [
            "Stunning next-gen graphics in the palm of your hand.",
            "Cinematic battles rendered in breathtaking 4K.",
            "Console-quality visuals, now on mobile.",
            "Experience the most beautiful open world ever made for phones.",
            "Ray-traced lighting meets epic fantasy.",
            "Every frame looks like a movie.",
            "Unreal-powered realism at {fps} frames per second.",
            "Photorealistic landscapes stretch as far as you can see.",
        ],
        "body": [
            "Explore a vast seamless world with dynamic weather.",
            "Hand-crafted cutscenes and motion-captured heroes bring the story to life.",
            "Detailed character models and lifelike animation in every fight.",
            "High-fidelity effects push your device to its limits.",
            "Immersive sound design and breathtaking scenery await.",
            "A visual masterpiece built by a AAA studio.",
        ],
        "cta": ["See it for yourself.", "Download the visual masterpiece.", "Play in stunning quality.", "Witness it now.", "Experience next-gen today."],
    },
    "competitive_pvp": {
        "hook": [
            "Climb the ranked ladder and prove you're the best.",
            "Real-time 5v5 PvP battles, no pay-to-win.",
            "Join the season {n} esports league today.",
            "Only skill matters in the arena.",
            "Can you reach Grandmaster rank?",
            "Fast competitive matches in under {mins} minutes.",
            "Top the global leaderboard and earn your title.",
            "Challenge real players in fair ranked duels.",
        ],
        "body": [
            "Master your hero, outplay your rivals and climb the leaderboard.",
            "Weekly tournaments with real prizes for the top teams.",
            "Balanced matchmaking pits you against players of your skill.",
            "Form a squad, practice strategy and dominate the ranked season.",
            "Spectate pro matches and learn from the champions.",
            "Every victory raises your rank and your reputation.",
        ],
        "cta": ["Enter the arena.", "Start ranking up.", "Prove your skill now.", "Queue for your first match.", "Compete today."],
    },
}
SHARED = ["Available on iOS and Android.", "Rated 4.8 stars by players.", "Over 10 million downloads.", "New update out now."]
ITEMS = ["sword", "dragon mount", "hero skin", "pet", "armor set", "rare card"]
GENRES = ["MMORPG", "fantasy RPG", "adventure game", "monster-taming RPG"]


def ad_text(rng, seg):
    t = TEXT[seg]
    fill = {
        "n": rng.choice([100, 300, 500, 1000, 3000]),
        "item": rng.choice(ITEMS),
        "genre": rng.choice(GENRES),
        "year": rng.choice([2003, 2006, 2009, 2012]),
        "fps": rng.choice([60, 90, 120]),
        "mins": rng.choice([5, 8, 10]),
    }
    parts = [rng.choice(t["hook"]).format(**fill)]
    if rng.random() < 0.85:
        parts.append(rng.choice(t["body"]))
    if rng.random() < 0.2:
        parts.append(rng.choice(SHARED))
    parts.append(rng.choice(t["cta"]))
    return " ".join(parts)


def pick(rng, options, probs):
    return rng.choices(options, weights=probs, k=1)[0]


def write_table(out, rows, seed, ad_text):
    """Writes `rows` ads drawn with `random.Random(seed)` to `out`; `ad_text(rng, segment)` writes
    each ad's copy (the Korean table, gen_game_ads_ko.py, passes its own)."""
    rng = random.Random(seed)
    header = ["Campaign_ID", "Country", "Channel", "Creative_Type", "Ad_Text", "Impressions", "CTR", "CVR", "ROAS", "true_segment"]
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i in range(rows):
            seg = pick(rng, SEGMENTS, WEIGHTS)
            country = pick(rng, COUNTRIES, COUNTRY[seg])
            channel = pick(rng, CHANNELS, CHANNEL[seg])
            creative = pick(rng, CREATIVES, CREATIVE[seg])
            metrics = []
            for m in range(3):
                v = BASE[seg][m] * COUNTRY_EFFECT[country][m] * CHANNEL_EFFECT[channel][m] * CREATIVE_EFFECT[creative][m]
                v *= INTERACTION.get((seg, country), (1, 1, 1))[m]
                v *= math.exp(rng.gauss(0.0, 0.12))
                metrics.append(v)
            ctr, cvr, roas = metrics
            impressions = int(math.exp(rng.gauss(10.5, 0.8)))
            text = ad_text(rng, seg)
            row = [f"C{100000 + i}", country, channel, creative, text, impressions, f"{ctr:.3f}", f"{cvr:.3f}", f"{roas:.3f}", seg]
            if rng.random() < 0.01:
                row[4] = ""
            for col in (6, 7, 8):
                if rng.random() < 0.02:
                    row[col] = "NA"
            for col in (1, 2, 3):
                if rng.random() < 0.01:
                    row[col] = ""
            w.writerow(row)


def main(doc=__doc__, out="examples/game_ads.csv", text=ad_text):
    """The command line of a generator: --rows, --seed, --out (the Korean one passes its own)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2400)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=out)
    a = ap.parse_args()
    write_table(a.out, a.rows, a.seed, text)


if __name__ == "__main__":
    main()
