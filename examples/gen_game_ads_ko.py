#!/usr/bin/env python3
"""Generates examples/game_ads_ko.csv: the demo table of gen_game_ads.py with Korean ad copy.

The same four latent creative strategies, Country, Channel, Creative_Type, Impressions and
CTR % / CVR % / ROAS drawn exactly as in the English table (same seed, same metric model); only
the ad copy is Korean, written the way Korean mobile-game ads are:

  reward_push       보상/혜택: 지급, 무료, 쿠폰, 출석 보상 ("지금 접속하면 전설 장비 100% 지급!")
  nostalgia_social  향수/커뮤니티: 추억, 길드, 옛 친구
  high_spec_visual  그래픽/스펙: 차세대 그래픽, 4K, 언리얼 엔진
  competitive_pvp   PvP, 랭킹, e스포츠, 실력

Nouns carry their particles as written Korean does (장비를, 길드와, 추억의), so the keywords
segmix reports must strip them to be words. Only the standard library is used; the output is
identical for a given --seed.

    python3 examples/gen_game_ads_ko.py --rows 2400 --seed 7 --out examples/game_ads_ko.csv
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_game_ads as generator  # noqa: E402  (the shared metric model and command line)

TEXT = {
    "reward_push": {
        "hook": [
            "지금 접속하면 전설 장비 100% 지급!",
            "신규 유저에게 다이아 {n}개를 무료로 드립니다!",
            "매일 출석만 해도 {item} 지급!",
            "쿠폰 입력하고 골드 {n}개 받아가세요!",
            "오픈 기념 무료 {k}연차 쿠폰 증정!",
            "우편함에 무료 {item} 선물이 도착했어요!",
            "접속만 하면 매일 보상이 쏟아집니다.",
            "지금 가입하면 한정 혜택을 드려요!",
            "사전예약 보상으로 전설 장비를 무료 지급!",
            "출석 이벤트 보상이 돌아왔습니다, 더 커진 혜택!",
        ],
        "body": [
            "7일 출석 보상으로 전설 등급 장비를 받으세요.",
            "과금 없이도 혜택이 계속 쌓입니다.",
            "퀘스트 세 개만 완료하면 보상이 두 배!",
            "이벤트 기간 한정 무료 뽑기 쿠폰을 놓치지 마세요.",
            "레벨업할 때마다 무료 보상이 지급됩니다.",
            "보물 상자를 열고 모든 보상을 챙기세요.",
            "쿠폰 코드만 입력하면 다이아가 바로 지급됩니다.",
            "접속 보상과 쿠폰 혜택을 한 번에 받으세요.",
        ],
        "cta": ["지금 바로 받기!", "사라지기 전에 받아가세요.", "다운로드하고 보상 받기.", "터치해서 혜택 받기.", "무료로 시작하세요."],
    },
    "nostalgia_social": {
        "hook": [
            "어릴 적 즐기던 그 RPG를 기억하시나요?",
            "추억의 {genre}, 그때 그 모습 그대로 돌아왔다.",
            "옛 친구들과 함께 추억의 모험을 다시 떠나세요.",
            "{year}년의 길드원들이 당신을 기다립니다.",
            "원작의 세계를 그대로 복원했습니다.",
            "모든 것이 시작된 그 게임을 다시 만나보세요.",
            "파티원들과 재회하고 한 번 더 모험을 떠나요.",
            "도트 감성 그대로, 추억을 모바일에서.",
        ],
        "body": [
            "친구들과 함께 길드를 다시 세우세요.",
            "떠나지 않은 유저들과 채팅하고 거래하고 탐험하세요.",
            "익숙한 마을과 추억의 음악, 그리고 사랑했던 영웅들.",
            "옛 동료들을 불러 매주 길드 레이드에 도전하세요.",
            "가족과 함께 협동 던전을 즐기세요.",
            "그리웠던 커뮤니티와 길드가 아직 여기 있습니다.",
            "친구들과 추억을 나누고 새로운 추억을 만드세요.",
        ],
        "cta": ["모험의 고향으로 돌아오세요.", "오늘 친구들과 함께하세요.", "다시 여정을 시작하세요.", "지금 길드원과 함께 플레이하세요.", "길드를 다시 모으세요."],
    },
    "high_spec_visual": {
        "hook": [
            "손안에서 펼쳐지는 압도적인 차세대 그래픽.",
            "숨막히는 4K 그래픽으로 구현된 영화 같은 전투.",
            "콘솔급 그래픽을 이제 모바일에서.",
            "모바일 역사상 가장 아름다운 오픈월드를 경험하세요.",
            "레이 트레이싱 조명과 웅장한 판타지의 만남.",
            "모든 장면이 한 편의 영화처럼.",
            "언리얼 엔진으로 구현한 {fps}프레임의 사실감.",
            "끝없이 펼쳐지는 실사급 풍경과 그래픽.",
        ],
        "body": [
            "실시간 날씨가 변하는 거대한 심리스 월드를 탐험하세요.",
            "모션 캡처로 살아 움직이는 영웅들과 시네마틱 컷신.",
            "정교한 캐릭터 모델링과 생생한 애니메이션.",
            "고사양 그래픽 효과가 기기의 한계를 시험합니다.",
            "몰입감 넘치는 사운드와 압도적인 풍경이 기다립니다.",
            "AAA 스튜디오가 만든 그래픽 걸작.",
        ],
        "cta": ["직접 확인하세요.", "그래픽 걸작을 다운로드하세요.", "최고 화질로 플레이하세요.", "지금 목격하세요.", "차세대 그래픽을 경험하세요."],
    },
    "competitive_pvp": {
        "hook": [
            "랭킹 사다리를 올라 최강임을 증명하세요.",
            "실시간 5대5 PvP, 과금 없는 공정한 대결.",
            "시즌 {s} e스포츠 리그에 지금 참가하세요.",
            "PvP 아레나에서는 오직 실력만이 통합니다.",
            "그랜드마스터 랭크에 도달할 수 있나요?",
            "{mins}분 안에 끝나는 빠른 PvP 경쟁전.",
            "글로벌 랭킹 1위에 도전하고 칭호를 얻으세요.",
            "실제 유저와 공정한 랭크 결투를 벌이세요.",
        ],
        "body": [
            "영웅을 마스터하고 라이벌을 압도해 랭킹을 올리세요.",
            "상위 팀에게 실제 상금이 걸린 주간 PvP 토너먼트.",
            "비슷한 실력의 유저와 매칭되는 밸런스 매치메이킹.",
            "스쿼드를 꾸려 전략을 연습하고 랭크 시즌을 지배하세요.",
            "프로 경기를 관전하며 챔피언에게 배우세요.",
            "승리할 때마다 랭크와 명성이 올라갑니다.",
        ],
        "cta": ["아레나에 입장하세요.", "지금 랭크를 올리세요.", "실력을 증명하세요.", "첫 PvP 경기에 도전하세요.", "오늘 경쟁하세요."],
    },
}
# Boilerplate every kind of ad carries (launch news, platforms, pre-registration): most ads have
# one or two, so the words of a strategy are a minority of each text, as in real ad copy.
SHARED = [
    "iOS와 안드로이드에서 만나보세요.",
    "평점 4.8점의 인기 게임.",
    "1000만 다운로드 돌파.",
    "새 업데이트 지금 출시.",
    "사전예약 진행 중, 지금 바로 참여하세요.",
    "정식 출시를 기념하는 특별한 이벤트가 열립니다.",
    "구글 플레이 인기 순위 1위를 달성했습니다.",
    "새로운 시즌과 신규 지역이 추가되었습니다.",
    "PC와 모바일에서 함께 즐길 수 있습니다.",
    "전 세계 유저들이 선택한 바로 그 게임.",
    "지금 다운로드하고 모험을 시작하세요.",
    "누구나 쉽게 시작할 수 있는 게임입니다.",
]
ITEMS = ["검", "드래곤 탈것", "영웅 스킨", "펫", "방어구 세트", "희귀 카드"]
GENRES = ["MMORPG", "판타지 RPG", "모험 게임", "몬스터 수집 RPG"]


def ad_text(rng, seg):
    t = TEXT[seg]
    fill = {
        "n": rng.choice([100, 300, 500, 1000, 3000]),
        "k": rng.choice([10, 30, 50]),
        "item": rng.choice(ITEMS),
        "genre": rng.choice(GENRES),
        "year": rng.choice([2003, 2006, 2009, 2012]),
        "fps": rng.choice([60, 90, 120]),
        "mins": rng.choice([5, 8, 10]),
        "s": rng.choice([3, 5, 7]),
    }
    parts = [rng.choice(t["hook"]).format(**fill)]
    if rng.random() < 0.85:
        parts.append(rng.choice(t["body"]))
    for _ in range(rng.choice([0, 1, 1, 2, 2, 3])):
        parts.append(rng.choice(SHARED))
    parts.append(rng.choice(t["cta"]))
    return " ".join(parts)


if __name__ == "__main__":
    generator.main(__doc__, "examples/game_ads_ko.csv", ad_text)
